"""Load what `evaluate` scores: a run of adapters, a fully fine-tuned run, or a bare
backbone (zero-shot), each as a Transcriber with a name for the report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lora_whisper.adapters.run import backbone_source, run_kind
from lora_whisper.backbone.load import load_backbone
from lora_whisper.errors import UserError
from lora_whisper.inference.transcriber import Transcriber
from lora_whisper.inference.transcriber import load as load_transcriber


@dataclass
class System:
    name: str
    kind: str                 # "adapters" | "full-model" | "backbone"
    transcriber: object
    path: str | None          # run dir or backbone dir
    backbone_source: str      # the frozen backbone (for "zero-shot" comparisons)


def load_system(run: str | Path | None = None, backbone: str | None = None, compute_type: str = "float32",
                **transcriber_kw) -> System:
    """`run`: a run dir (adapters or full model; `backbone` overrides where its backbone is).
    No run: the backbone alone (None = embedded whisper-base). `compute_type` is applied as
    the backbone is loaded."""
    if run is None:
        bb = load_backbone(backbone, compute_type=compute_type)
        return System(f"zero-shot {bb.source}", "backbone", Transcriber(bb, **transcriber_kw),
                      backbone, bb.source)
    run = Path(run)
    kind = run_kind(run)
    return System(run.name or str(run), kind,
                  load_transcriber(backbone, run=run, compute_type=compute_type, **transcriber_kw), str(run),
                  backbone_source(run))


def zero_shot_of(system: System, **transcriber_kw) -> System:
    try:
        return load_system(None, system.backbone_source, **transcriber_kw)
    except UserError as exc:
        raise UserError(f"cannot load the backbone {system.backbone_source!r} for the zero-shot "
                        f"comparison: {exc}") from None
