"""The run directory, every kind of it: the one module that reads and writes its run file.

```
run/lora_whisper.json                      the run file: format, backbone {source, fingerprint},
                                           lora spec, ordered experts [{name, path, sha256,
                                           parameters, provenance}]
run/adapters/<name>/                       one expert in peft's format (adapters/files.py)
```
A fully fine-tuned run has no experts: the whole model is a plain transformers Whisper in
run/model/, and its run file says so (format FULL_FORMAT, `base_backbone`, `languages`).

Provenance is free-form; keys other code reads: `created` (added when absent), `recipe`,
`init`, `similarity`, `prompt_language`, and `moe: {"experts": {name: weight}}` for a
language decoded as a mixture (listing every expert applied, its own included).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from lora_whisper.adapters.config import LoraSpec
from lora_whisper.adapters.files import (CONFIG_FILE, WEIGHTS_FILE, check_adapter_config, json_bytes,
                                         peft_config_dict, read_json, safetensors_shapes)
from lora_whisper.adapters.model import AdapterError, LoRABank, check_expert_name, inject, target_paths
from lora_whisper.atomic import atomic_write_bytes
from lora_whisper.backbone import check_compute_type
from lora_whisper.backbone.load import load_backbone, sha256_file
from lora_whisper.backbone.quantize import prepare
from lora_whisper.errors import UserError

RUN_FILE = "lora_whisper.json"
FORMAT = "lora-whisper-run"                 # a bank of LoRA experts
FULL_FORMAT = "lora-whisper-full-model"     # a fully fine-tuned model
MODEL_DIR = "model"
VERSION = 1


def is_run(path: str | Path) -> bool:
    return (Path(path) / RUN_FILE).is_file()


def run_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / RUN_FILE


def read_meta(run_dir: str | Path) -> dict:
    """The run file as a dict (UserError naming the problem when it is not a run)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AdapterError(f"{run_dir}: {'a file, not a run directory' if run_dir.exists() else 'no such run directory'}")
    meta = read_json(run_dir / RUN_FILE, "not a lora-whisper run directory")
    if not isinstance(meta, dict):
        raise UserError(f"{run_dir / RUN_FILE}: not a JSON object")
    return meta


def write_meta(run_dir: str | Path, meta: dict) -> None:
    atomic_write_bytes(Path(run_dir) / RUN_FILE, json_bytes(meta))


def snapshot(run_dir: str | Path) -> bytes:
    """The run file's bytes, to put back with `restore` if a change must be undone."""
    return (Path(run_dir) / RUN_FILE).read_bytes()


def restore(run_dir: str | Path, saved: bytes) -> None:
    atomic_write_bytes(Path(run_dir) / RUN_FILE, saved)


def copy_run(src: str | Path, dst: str | Path) -> None:
    """A run of experts copied byte for byte: its run file and every expert's files (not its
    metrics, evaluations or checkpoints)."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for e in read_meta(src)["experts"]:
        shutil.copytree(src / e["path"], dst / e["path"])
    shutil.copy2(src / RUN_FILE, dst / RUN_FILE)


def remove_run_file(run_dir: str | Path) -> None:
    """Unregister a staging directory (its experts live on in the run they were saved into)."""
    (Path(run_dir) / RUN_FILE).unlink(missing_ok=True)


def modified(run_dir: str | Path) -> float:
    """When the run file was last written (a served model's `created`)."""
    return os.path.getmtime(Path(run_dir) / RUN_FILE)


def run_kind(run_dir: str | Path) -> str:
    """'adapters' or 'full-model' (raises UserError when it is not a run)."""
    return "full-model" if read_meta(run_dir).get("format") == FULL_FORMAT else "adapters"


def backbone_source(run_dir: str | Path) -> str:
    """Where the run's frozen backbone comes from (a full fine-tune: the model it started from)."""
    meta = read_meta(run_dir)
    try:
        return (meta["base_backbone"] if meta.get("format") == FULL_FORMAT else meta["backbone"])["source"]
    except (KeyError, TypeError):
        raise UserError(f"{run_file(run_dir)}: malformed (no backbone source)") from None


def open_run(run_dir: str | Path, source: str | None = None, compute_type: str = "float32"):
    """(backbone, bank, info) of a run of any kind, every file checked against the run file.
    A full fine-tune has no bank: (its model, None, None). `source` overrides where an
    adapter run's backbone is. `compute_type` "int8" quantises the backbone once the experts
    are injected (inside a LoRA wrapper it is the base layer that is converted; the experts
    stay float32, as trained)."""
    check_compute_type(compute_type)
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    if meta.get("format") == FULL_FORMAT:
        return load_backbone(str(run_dir / meta.get("model", MODEL_DIR)), compute_type=compute_type), None, None
    backbone = load_backbone(source or backbone_source(run_dir))
    bank, info = load_run(run_dir, backbone)
    return prepare(backbone, compute_type), bank, info


def save_full_model(dest: str | Path, backbone, languages: list[str], provenance: dict) -> Path:
    """A fully fine-tuned model as a run: run/model/ (swapped in atomically), then the run file."""
    dest = Path(dest)
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
    write_meta(dest, {
        "format": FULL_FORMAT, "version": VERSION, "recipe": "full-ft", "model": MODEL_DIR,
        "languages": list(languages),
        "base_backbone": {"source": backbone.source, "fingerprint": backbone.fingerprint},
        "provenance": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance},
    })
    return dest


# -- a run of LoRA experts ------------------------------------------------------------
class RouteTable:
    """Which experts the rows of each language go through: the routing policy of a run.
    RunInfo answers from the run file; a plan being trained answers for its dev decoding
    before anything is saved (training/recipes.py, expansion/add.py)."""

    @property
    def experts(self) -> list[str]:
        return []

    def provenance(self, name: str) -> dict:
        return {}

    def mixture(self, name: str) -> dict[str, float] | None:
        return None

    @property
    def shared_expert(self) -> str | None:
        """The expert that serves every language (a shared-LoRA run), if any."""
        return next((n for n in self.experts if self.provenance(n).get("route_all")), None)

    def route(self, language: str | None, known, shared: str | None = None) -> dict[str, float] | None:
        """{expert: weight} the rows of `language` are routed with; None = the bare backbone.
        Every language goes to the shared expert where there is one (`shared` overrides the
        run's), else to its own expert (one of `known`), or to the mixture recorded for it (MoE)."""
        if language is None:
            return None
        shared = shared or self.shared_expert
        if shared:
            return {shared: 1.0}
        if language not in known:
            return None
        return self.mixture(language) or {language: 1.0}

    def prompt_language(self, language: str | None) -> str | None:
        """The Whisper language token the rows of `language` are prompted with: itself, or for
        a language Whisper has no token for, the one recorded when it was added."""
        if language and language in self.experts:
            return self.provenance(language).get("prompt_language") or language
        return language


@dataclass
class RunInfo(RouteTable):
    path: Path
    data: dict

    @property
    def spec(self) -> LoraSpec:
        return LoraSpec.from_dict(self.data["lora"])

    @property
    def experts(self) -> list[str]:
        return [e["name"] for e in self.data["experts"]]

    @property
    def backbone_source(self) -> str:
        return self.data["backbone"]["source"]

    @property
    def backbone_fingerprint(self) -> str:
        return self.data["backbone"]["fingerprint"]

    def entry(self, name: str) -> dict:
        for e in self.data["experts"]:
            if e["name"] == name:
                return e
        raise AdapterError(f"{self.path / RUN_FILE}: no expert {name!r} (have: {', '.join(self.experts) or 'none'})")

    def adapter_dir(self, name: str) -> Path:
        return self.path / self.entry(name)["path"]

    def provenance(self, name: str) -> dict:
        return dict(self.entry(name).get("provenance") or {})

    def mixture(self, name: str) -> dict[str, float] | None:
        """For a MoE language: {expert: weight} to route its rows with; else None."""
        moe = self.provenance(name).get("moe")
        if not moe:
            return None
        try:
            return {str(k): float(v) for k, v in moe["experts"].items()}
        except (KeyError, TypeError, AttributeError, ValueError):
            raise AdapterError(f"{self.path / RUN_FILE}: expert {name!r}: provenance 'moe' must be "
                               f"{{\"experts\": {{name: weight}}}}, got {moe!r}") from None


def read_run(run_dir: str | Path) -> RunInfo:
    """Parse and sanity-check the run file of a run of experts (no weights read)."""
    run_dir = Path(run_dir)
    data = read_meta(run_dir)
    if data.get("format") != FORMAT:
        raise AdapterError(f"{run_dir / RUN_FILE}: format {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise AdapterError(f"{run_dir / RUN_FILE}: version {data.get('version')!r}; this lora-whisper reads {VERSION}")
    try:
        LoraSpec.from_dict(data["lora"])
        data["backbone"]["fingerprint"], data["backbone"]["source"]
        entries = [(e["name"], e["path"], e["sha256"]) for e in data["experts"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise AdapterError(f"{run_dir / RUN_FILE}: malformed ({type(exc).__name__}: {exc})") from None
    for name, path, _ in entries:
        # Paths come from a file a user may edit: keep them inside the run directory.
        if path != f"adapters/{check_expert_name(name)}":
            raise AdapterError(f"{run_dir / RUN_FILE}: expert {name!r} has path {path!r}, expected 'adapters/{name}'")
    return RunInfo(run_dir, data)


def save_run(run_dir: str | Path, bank: LoRABank, backbone, provenance: Mapping[str, dict] | None = None,
             only: list[str] | None = None) -> RunInfo:
    """Write the experts `only` (default: all) and the run file, which is written last.

    An expert file whose content is unchanged is not rewritten; every write is atomic.
    An existing run must have the same backbone and spec; its other experts are kept.
    """
    run_dir = Path(run_dir)
    provenance = dict(provenance or {})
    names = list(bank.experts if only is None else only)
    for n in names + list(provenance):
        check_expert_name(n)
    missing = [n for n in names if n not in bank.experts]
    if missing:
        raise AdapterError(f"cannot save {', '.join(map(repr, missing))}: not in the bank ({', '.join(bank.experts)})")
    if (run_dir / RUN_FILE).exists():
        old = read_run(run_dir).data
        if old["backbone"]["fingerprint"] != backbone.fingerprint:
            raise AdapterError(f"{run_dir}: backbone fingerprint differs: run made with "
                               f"{old['backbone']['fingerprint'][:16]}, got {backbone.fingerprint[:16]}")
        if old["lora"] != bank.spec.to_dict():
            raise AdapterError(f"{run_dir}: LoRA spec differs: run has {old['lora']}, bank has {bank.spec.to_dict()}")
    else:
        old = {"experts": []}
    entries = {e["name"]: dict(e) for e in old["experts"]}
    unknown = [n for n in provenance if n not in entries and n not in names]
    if unknown:
        raise AdapterError(f"provenance given for {unknown[0]!r}, which is neither saved now nor in {run_dir / RUN_FILE}")
    order = [e["name"] for e in old["experts"]] + [n for n in bank.experts if n in names and n not in entries]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    config_bytes = json_bytes(peft_config_dict(bank.spec, backbone.source))
    for name in names:
        adir = run_dir / "adapters" / name
        blob = safetensors_bytes(bank.state_dict_of(name), metadata={"format": "pt"})
        sha = hashlib.sha256(blob).hexdigest()
        wfile = adir / WEIGHTS_FILE
        if not (wfile.exists() and sha256_file(wfile) == sha):
            atomic_write_bytes(wfile, blob)
        if not ((adir / CONFIG_FILE).exists() and (adir / CONFIG_FILE).read_bytes() == config_bytes):
            atomic_write_bytes(adir / CONFIG_FILE, config_bytes)
        e = entries.setdefault(name, {"name": name, "path": f"adapters/{name}"})
        e.update(sha256=sha, parameters=sum(p.numel() for p in bank.parameters_of(name)))
    for name in order:
        e = entries[name]
        prov = dict(provenance[name]) if name in provenance else dict(e.get("provenance") or {})
        prov.setdefault("created", (e.get("provenance") or {}).get("created", now))
        e["provenance"] = prov
    data = {
        "format": FORMAT, "version": VERSION,
        "backbone": {"source": backbone.source, "fingerprint": backbone.fingerprint},
        "lora": bank.spec.to_dict(),
        "experts": [entries[n] for n in order],
    }
    write_meta(run_dir, data)
    return RunInfo(run_dir, data)


def load_run(run_dir: str | Path, backbone, languages: list[str] | None = None) -> tuple[LoRABank, RunInfo]:
    """Inject the run's experts (default: all, in the run's order) into `backbone.model`,
    after checking the backbone, the spec and every file against the run file."""
    info = read_run(run_dir)
    if info.backbone_fingerprint != backbone.fingerprint:
        raise AdapterError(f"{info.path}: backbone fingerprint differs: run made with "
                           f"{info.backbone_fingerprint[:16]} ({info.backbone_source}), "
                           f"got {backbone.fingerprint[:16]} ({backbone.source})")
    spec = info.spec
    names = info.experts if languages is None else list(languages)
    for n in names:
        info.entry(n)
    weights = {}
    model = backbone.model
    wrapped = target_paths(model, spec)
    for name in names:
        adir = info.adapter_dir(name)
        rel = adir.relative_to(info.path)
        label = f"adapter {name!r}"
        cfg = read_json(adir / CONFIG_FILE, f"{label}'s peft config")
        check_adapter_config(cfg, spec, model, wrapped, label, "run says", exact_targets=True)
        wfile = adir / WEIGHTS_FILE
        if not wfile.exists():
            raise AdapterError(f"{rel / WEIGHTS_FILE}: missing")
        if sha256_file(wfile) != info.entry(name)["sha256"]:
            raise AdapterError(f"{rel / WEIGHTS_FILE}: checksum mismatch (corrupted or modified)")
        weights[name] = load_file(str(wfile))
    bank = inject(model, spec)
    for name in names:
        bank.load_expert(name, weights[name])
    return bank, info


def verify_expert(info: RunInfo, name: str) -> str | None:
    """Why an expert's weights cannot be trusted (missing, checksum, corrupt header), or None."""
    wfile = info.adapter_dir(name) / WEIGHTS_FILE
    rel = wfile.relative_to(info.path)
    if not wfile.is_file():
        return f"{rel}: missing"
    if sha256_file(wfile) != info.entry(name).get("sha256"):
        return f"{rel}: checksum mismatch (corrupted or modified since it was saved)"
    try:
        safetensors_shapes(wfile)
    except AdapterError as exc:
        return str(exc)
    return None


def expert_fingerprints(run_dir: str | Path) -> dict[str, dict[str, str | None]]:
    """Per expert: the sha256 the run file records, and those of its files on disk."""
    info = read_run(run_dir)
    out = {}
    for name in info.experts:
        adir = info.adapter_dir(name)
        out[name] = {"recorded": info.entry(name)["sha256"], "weights": _sha(adir / WEIGHTS_FILE),
                     "config": _sha(adir / CONFIG_FILE)}
    return out


def _sha(path: Path) -> str | None:
    return sha256_file(path) if path.exists() else None


def unrouted_experts(info: RunInfo, languages: Iterable[str]) -> list[str]:
    """Experts no input can reach: not a language code the backbone knows, no declared
    prompt_language, not the route-all expert and in no language's mixture (typically an
    expert renamed by hand). Its weights are loaded but never used."""
    known = set(languages)
    reachable = [n for n in info.experts if n in known or info.provenance(n).get("prompt_language")]
    used = set(reachable) | {n for n in info.experts if info.provenance(n).get("route_all")}
    for n in reachable:
        used.update(info.mixture(n) or {})
    return [n for n in info.experts if n not in used]
