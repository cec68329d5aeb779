"""Writing a trained plan as a run directory that inference and evaluation load.

Adapter recipes write peft-format experts through `adapters.files.save_run`. Full
fine-tuning has no adapters: the whole model goes to run/model/ as a plain transformers
Whisper (loadable by `load_backbone` or `WhisperForConditionalGeneration.from_pretrained`),
and run/lora_whisper.json says so with format "lora-whisper-full-model".
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

FULL_FORMAT = "lora-whisper-full-model"
RUN_FILE = "lora_whisper.json"
MODEL_DIR = "model"


def save_plan(plan, dest: str | Path, languages: list[str], provenance: dict) -> Path:
    dest = Path(dest)
    if plan.bank is None:
        return save_full_model(dest, plan.backbone, languages, {"recipe": plan.recipe, **provenance})
    from lora_whisper.adapters.files import save_run

    prov = {name: {"recipe": plan.recipe, **provenance, **plan.expert_provenance.get(name, {})}
            for name in plan.trained}
    if plan.route_all_to is not None:
        # One expert serves every language: say which, so a loader can route them all to it.
        prov[plan.route_all_to].update(route_all=True, languages=list(languages))
    save_run(dest, plan.bank, plan.backbone, provenance=prov, only=plan.save_experts)
    return dest


def _atomic_json(path: Path, obj: dict) -> None:
    from lora_whisper.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def save_full_model(dest: Path, backbone, languages: list[str], provenance: dict) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".{MODEL_DIR}.tmp-"))
    try:
        backbone.model.save_pretrained(tmp, safe_serialization=True)
        src = Path(backbone.local_dir)
        for name in ("tokenizer.json", "generation.json"):
            if (src / name).exists():
                shutil.copy(src / name, tmp / name)
        target = dest / MODEL_DIR
        old = None
        if target.exists():
            old = dest / f".{MODEL_DIR}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _atomic_json(dest / RUN_FILE, {
        "format": FULL_FORMAT, "version": 1, "recipe": "full-ft", "model": MODEL_DIR,
        "languages": list(languages),
        "base_backbone": {"source": backbone.source, "fingerprint": backbone.fingerprint},
        "provenance": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance},
    })
    return dest


def run_kind(run_dir: str | Path) -> str:
    """'adapters' or 'full-model' (raises UserError when it is not a run)."""
    from lora_whisper.errors import UserError

    path = Path(run_dir) / RUN_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir}: not a run directory (no {RUN_FILE})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    return "full-model" if meta.get("format") == FULL_FORMAT else "adapters"
