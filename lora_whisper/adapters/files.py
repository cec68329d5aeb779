"""Run directories: one peft-format LoRA adapter per expert, tied together by lora_whisper.json.

```
run/lora_whisper.json                      format, backbone {source, fingerprint}, lora spec,
                                           ordered experts [{name, path, sha256, parameters,
                                           provenance}]
run/adapters/<name>/adapter_config.json    peft's LoraConfig (PeftModel.from_pretrained loads it)
run/adapters/<name>/adapter_model.safetensors
```
Provenance is free-form; keys other code reads: `created` (added when absent), `recipe`,
`init`, `similarity`, `prompt_language`, and `moe: {"experts": {name: weight}}` for a
language decoded as a mixture (listing every expert applied, its own included).
"""
from __future__ import annotations

from lora_whisper.atomic import atomic_write_bytes

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from lora_whisper.adapters.config import LoraSpec
from lora_whisper.adapters.layer import LanguageLoRALinear
from lora_whisper.adapters.model import PEFT_PREFIX, AdapterError, LoRABank, check_expert_name, inject

RUN_FILE = "lora_whisper.json"
FORMAT = "lora-whisper-run"
VERSION = 1
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


# -- small I/O helpers ------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AdapterError(f"{path}: missing ({what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{path}: not valid JSON ({exc})") from None


def safetensors_shapes(path: Path) -> dict[str, tuple[str, list[int]]]:
    """name -> (dtype, shape) from the file's header alone (no tensor data read); a header
    that is cut off or not JSON is an AdapterError naming the file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if size < 8 or not 2 <= n <= size - 8:
            raise AdapterError(f"{path}: corrupt safetensors header (declares {n} bytes in a {size}-byte file)")
        try:
            header = json.loads(f.read(n))
            return {k: (v["dtype"], list(v["shape"])) for k, v in header.items() if k != "__metadata__"}
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise AdapterError(f"{path}: corrupt safetensors header ({type(exc).__name__})") from None


def verify_expert(info: "RunInfo", name: str) -> str | None:
    """Why an expert's weights cannot be trusted (missing, checksum, corrupt header), or None."""
    wfile = info.adapter_dir(name) / WEIGHTS_FILE
    rel = wfile.relative_to(info.path)
    if not wfile.is_file():
        return f"{rel}: missing"
    if _sha256_file(wfile) != info.entry(name).get("sha256"):
        return f"{rel}: checksum mismatch (corrupted or modified since it was saved)"
    try:
        safetensors_shapes(wfile)
    except AdapterError as exc:
        return str(exc)
    return None


def unrouted_experts(info: "RunInfo", languages: Iterable[str]) -> list[str]:
    """Experts no input can reach: not a language code the backbone knows, no declared
    prompt_language, not the route-all expert and in no language's mixture (typically an
    expert renamed by hand). Its weights are loaded but never used."""
    known = set(languages)
    reachable = [n for n in info.experts if n in known or info.provenance(n).get("prompt_language")]
    used = set(reachable) | {n for n in info.experts if info.provenance(n).get("route_all")}
    for n in reachable:
        used.update(info.mixture(n) or {})
    return [n for n in info.experts if n not in used]


# -- peft's adapter_config.json ---------------------------------------------------------
def peft_config_dict(spec: LoraSpec, base_model: str) -> dict:
    """The fields peft's LoraConfig.save_pretrained writes for a plain LoRA adapter."""
    try:
        from importlib.metadata import version

        peft_version = version("peft")
    except Exception:
        peft_version = None
    cfg = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": base_model,
        "bias": "none", "exclude_modules": None, "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "layer_replication": None, "layers_pattern": None,
        "layers_to_transform": None, "lora_alpha": spec.alpha, "lora_bias": False,
        "lora_dropout": spec.dropout, "modules_to_save": None, "peft_type": "LORA",
        "r": spec.r, "rank_pattern": {}, "revision": None,
        "target_modules": spec.peft_target_regex(), "task_type": None, "use_dora": False,
        "use_rslora": False,
    }
    if peft_version:
        cfg["peft_version"] = peft_version
    return dict(sorted(cfg.items()))


def peft_hits(target_modules, names: Iterable[str]) -> list[str]:
    """The module names peft would wrap for this `target_modules` (its matching rules)."""
    names = list(names)
    if target_modules is None:
        return []
    if isinstance(target_modules, str):
        return [n for n in names if re.fullmatch(target_modules, n)]
    targets = list(target_modules)
    return [n for n in names if n in targets or any(n.endswith("." + t) for t in targets)]


def _linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, LanguageLoRALinear)) and not n.endswith(".base_layer")]


def _check_adapter_config(cfg: dict, spec: LoraSpec, model: nn.Module, wrapped: list[str], label: str,
                          run_says: str, exact_targets: bool) -> list[str]:
    """Refuse a config that does not fit `spec`; return the modules it targets."""
    if cfg.get("peft_type") != "LORA":
        raise AdapterError(f"{label}: peft_type {cfg.get('peft_type')!r} in {CONFIG_FILE}, expected 'LORA'")
    if cfg.get("r") != spec.r:
        raise AdapterError(f"{label}: rank {cfg.get('r')} in {CONFIG_FILE}, {run_says} {spec.r}")
    alpha = cfg.get("lora_alpha")
    if alpha is None or float(alpha) / spec.r != spec.scale:
        raise AdapterError(f"{label}: lora_alpha {alpha} in {CONFIG_FILE}, {run_says} {spec.alpha}")
    for key, ok in (("use_dora", False), ("use_rslora", False), ("bias", "none"), ("lora_bias", False)):
        if cfg.get(key, ok) != ok:
            raise AdapterError(f"{label}: {key}={cfg[key]!r} in {CONFIG_FILE} is not supported (plain LoRA only)")
    for key in ("rank_pattern", "alpha_pattern", "layers_to_transform", "modules_to_save",
                "exclude_modules", "layer_replication"):
        if cfg.get(key):
            raise AdapterError(f"{label}: {key} in {CONFIG_FILE} is not supported")
    hits = peft_hits(cfg.get("target_modules"), _linear_names(model))
    extra = sorted(set(hits) - set(wrapped))
    short = sorted(set(wrapped) - set(hits))
    if extra or (exact_targets and short):
        detail = f"e.g. {(extra or short)[0]} {'only in the adapter' if extra else 'missing from the adapter'}"
        raise AdapterError(f"{label}: targets differ: {CONFIG_FILE} targets {len(hits)} modules, "
                           f"{run_says} {len(wrapped)} ({detail})")
    return hits


# -- the run file -----------------------------------------------------------------------
@dataclass
class RunInfo:
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
    """Parse and sanity-check lora_whisper.json (no weights read)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AdapterError(f"{run_dir}: no such run directory")
    data = _read_json(run_dir / RUN_FILE, "not a lora-whisper run directory")
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
    names = list(bank.languages if only is None else only)
    for n in names + list(provenance):
        check_expert_name(n)
    missing = [n for n in names if n not in bank.languages]
    if missing:
        raise AdapterError(f"cannot save {', '.join(map(repr, missing))}: not in the bank ({', '.join(bank.languages)})")
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
    order = [e["name"] for e in old["experts"]] + [n for n in bank.languages if n in names and n not in entries]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    config_bytes = _json_bytes(peft_config_dict(bank.spec, backbone.source))
    for name in names:
        adir = run_dir / "adapters" / name
        blob = safetensors_bytes(bank.state_dict_of(name), metadata={"format": "pt"})
        sha = hashlib.sha256(blob).hexdigest()
        wfile = adir / WEIGHTS_FILE
        if not (wfile.exists() and _sha256_file(wfile) == sha):
            _atomic_write(wfile, blob)
        if not ((adir / CONFIG_FILE).exists() and (adir / CONFIG_FILE).read_bytes() == config_bytes):
            _atomic_write(adir / CONFIG_FILE, config_bytes)
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
    _atomic_write(run_dir / RUN_FILE, _json_bytes(data))
    return RunInfo(run_dir, data)


def load_run(run_dir: str | Path, backbone, languages: list[str] | None = None) -> tuple[LoRABank, RunInfo]:
    """Inject the run's experts (default: all, in the run's order) into `backbone.model`,
    after checking the backbone, the spec and every file against lora_whisper.json."""
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
    from lora_whisper.adapters.model import target_paths

    wrapped = target_paths(model, spec)
    for name in names:
        adir = info.adapter_dir(name)
        rel = adir.relative_to(info.path)
        label = f"adapter {name!r}"
        cfg = _read_json(adir / CONFIG_FILE, f"{label}'s peft config")
        _check_adapter_config(cfg, spec, model, wrapped, label, "run says", exact_targets=True)
        wfile = adir / WEIGHTS_FILE
        if not wfile.exists():
            raise AdapterError(f"{rel / WEIGHTS_FILE}: missing")
        if _sha256_file(wfile) != info.entry(name)["sha256"]:
            raise AdapterError(f"{rel / WEIGHTS_FILE}: checksum mismatch (corrupted or modified)")
        weights[name] = load_file(str(wfile))
    bank = inject(model, spec)
    for name in names:
        bank.load_expert(name, weights[name])
    return bank, info


def load_peft_adapter(bank: LoRABank, name: str, adapter_dir: str | Path) -> int:
    """Import an adapter written by peft (`save_pretrained`) as expert `name` (added if new).

    It must use this bank's rank and scale; it may target a subset of the bank's modules
    (the others get B = 0, i.e. no change), never a module the bank does not wrap.
    """
    adir = Path(adapter_dir)
    label = f"peft adapter {str(adir)!r}"
    cfg = _read_json(adir / CONFIG_FILE, "peft adapter config")
    wrapped = list(bank.layers)
    hits = _check_adapter_config(cfg, bank.spec, bank.model, wrapped, label, "bank has", exact_targets=False)
    if (adir / WEIGHTS_FILE).exists():
        sd = load_file(str(adir / WEIGHTS_FILE))
    elif (adir / "adapter_model.bin").exists():
        sd = torch.load(adir / "adapter_model.bin", map_location="cpu", weights_only=True)
    else:
        raise AdapterError(f"{adir}: no {WEIGHTS_FILE} or adapter_model.bin")
    want = {bank.peft_key(p, w) for p in hits for w in "AB"}
    if set(sd) != want:
        odd = sorted(set(sd) ^ want)[0]
        raise AdapterError(f"{label}: weights do not match its target_modules (e.g. {odd!r}); "
                           f"expected keys like {PEFT_PREFIX}<module>.lora_A.weight")
    full = dict(sd)
    gen = torch.Generator().manual_seed(0)
    for path in set(wrapped) - set(hits):
        layer = bank.layers[path]
        A = torch.empty(layer.r, layer.in_features)
        nn.init.kaiming_uniform_(A, a=5 ** 0.5, generator=gen)
        full[bank.peft_key(path, "A")] = A
        full[bank.peft_key(path, "B")] = torch.zeros(layer.out_features, layer.r)
    return bank.load_expert(name, full)
