"""One expert's files in peft's format: adapter_config.json (peft's LoraConfig, so
PeftModel.from_pretrained loads it) and adapter_model.safetensors; checks of a config against
a bank; importing an adapter that peft wrote. The run directory that ties experts together
is adapters/run.py.
"""
from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import load_file
from torch import nn

from lora_whisper.adapters.config import LoraSpec
from lora_whisper.adapters.layer import LanguageLoRALinear
from lora_whisper.adapters.model import PEFT_PREFIX, AdapterError, LoRABank

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


# -- small I/O helpers ------------------------------------------------------------------
def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()


def read_json(path: Path, what: str) -> dict:
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


# -- peft's adapter_config.json ---------------------------------------------------------
def peft_config_dict(spec: LoraSpec, base_model: str) -> dict:
    """The fields peft's LoraConfig.save_pretrained writes for a plain LoRA adapter."""
    try:

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


def check_adapter_config(cfg: dict, spec: LoraSpec, model: nn.Module, wrapped: list[str], label: str,
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


def load_peft_adapter(bank: LoRABank, name: str, adapter_dir: str | Path) -> int:
    """Import an adapter written by peft (`save_pretrained`) as expert `name` (added if new).

    It must use this bank's rank and scale; it may target a subset of the bank's modules
    (the others get B = 0, i.e. no change), never a module the bank does not wrap.
    """
    adir = Path(adapter_dir)
    label = f"peft adapter {str(adir)!r}"
    cfg = read_json(adir / CONFIG_FILE, "peft adapter config")
    wrapped = list(bank.layers)
    hits = check_adapter_config(cfg, bank.spec, bank.model, wrapped, label, "bank has", exact_targets=False)
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
