"""LoRABank: the wrapped linears of one Whisper, seen as an ordered bank of named experts.

Mirrors peft's `tuners/lora/model.py` (injection, adapter bookkeeping, state dicts with
peft's key names). Expert names are free-form ("pl", "shared", "pl-warm"): nothing here
assumes they are language codes. An expert's index is its position in `bank.experts`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

from lora_whisper.adapters.config import LoraSpec
from lora_whisper.adapters.layer import LanguageLoRALinear
from lora_whisper.adapters.routing import Routing
from lora_whisper.errors import UserError

PEFT_PREFIX = "base_model.model."
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+\-]*")


class AdapterError(UserError):
    """An adapter or run directory that cannot be used as asked; the message says what differs."""


def check_expert_name(name: str) -> str:
    # Names become directory names under run/adapters/: keep them path-safe.
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise AdapterError(f"expert name {name!r} is not valid: use letters, digits, '_', '-', '+'")
    return name


@dataclass(frozen=True)
class ParamCount:
    per_expert: dict[str, int]
    total: int          # all experts together
    backbone: int       # the frozen Whisper's own parameters

    def bytes_fp32(self, name: str | None = None) -> int:
        return 4 * (self.total if name is None else self.per_expert[name])


class LoRABank:
    def __init__(self, model: nn.Module, spec: LoraSpec, layers: dict[str, LanguageLoRALinear]):
        self.model = model
        self.spec = spec
        self.layers = layers            # module path -> wrapped linear, in model order
        self.experts: list[str] = []

    # -- experts ------------------------------------------------------------------------
    def index(self, name: str) -> int:
        try:
            return self.experts.index(name)
        except ValueError:
            raise AdapterError(f"no expert {name!r} in this bank (have: {', '.join(self.experts) or 'none'})") from None

    def add_language(self, name: str, init: str | Mapping[str, torch.Tensor] = "random",
                     seed: int | None = None) -> int:
        """Append an expert; existing experts are not touched. Returns its index.

        init: "random" (peft's init: B = 0, so the new expert starts as the bare backbone),
        "copy:<expert>" (warm start from another expert), or a peft-format state dict.
        """
        check_expert_name(name)
        if name in self.experts:
            raise AdapterError(f"expert {name!r} already exists in this bank")
        source = None
        if isinstance(init, str):
            if init.startswith("copy:"):
                source = self.index(init[len("copy:"):])
            elif init != "random":
                raise AdapterError(f"unknown expert init {init!r}: use 'random', 'copy:<expert>' or a state dict")
        else:
            self._check_state_dict(init, name)
        gen = None
        if seed is not None:
            gen = torch.Generator().manual_seed(seed)
        for layer in self.layers.values():
            layer.add_expert(generator=gen)
        self.experts.append(name)
        e = len(self.experts) - 1
        with torch.no_grad():
            if source is not None:
                for layer in self.layers.values():
                    layer.lora_A[e].copy_(layer.lora_A[source])
                    layer.lora_B[e].copy_(layer.lora_B[source])
            elif not isinstance(init, str):
                self._copy_in(e, init)
        # A new expert never trains by accident: training code opts in with set_trainable.
        for p in self.parameters_of(name):
            p.requires_grad_(False)
        return e

    def load_expert(self, name: str, state_dict: Mapping[str, torch.Tensor]) -> int:
        """Load peft-format weights into expert `name` (appended if new)."""
        if name not in self.experts:
            return self.add_language(name, init=state_dict)
        self._check_state_dict(state_dict, name)
        e = self.index(name)
        with torch.no_grad():
            self._copy_in(e, state_dict)
        return e

    def peft_key(self, path: str, which: str) -> str:
        return f"{PEFT_PREFIX}{path}.lora_{which}.weight"

    def state_dict_of(self, name: str) -> dict[str, torch.Tensor]:
        """Expert `name` keyed exactly as peft's `save_pretrained` writes it."""
        e = self.index(name)
        out = {}
        for path, layer in self.layers.items():
            out[self.peft_key(path, "A")] = layer.lora_A[e].detach().to("cpu").clone().contiguous()
            out[self.peft_key(path, "B")] = layer.lora_B[e].detach().to("cpu").clone().contiguous()
        return out

    def parameters_of(self, name: str) -> list[nn.Parameter]:
        e = self.index(name)
        return [p for layer in self.layers.values() for p in (layer.lora_A[e], layer.lora_B[e])]

    def set_trainable(self, names: Iterable[str]) -> list[nn.Parameter]:
        """Only these experts require grad; the backbone and all other experts are frozen.
        Returns the trainable parameters (for the optimizer)."""
        names = list(names)
        for n in names:
            self.index(n)
        self.model.requires_grad_(False)
        params = [p for n in names for p in self.parameters_of(n)]
        for p in params:
            p.requires_grad_(True)
        return params

    def count_parameters(self) -> ParamCount:
        per = {n: sum(p.numel() for p in self.parameters_of(n)) for n in self.experts}
        lora = {id(p) for layer in self.layers.values() for p in (*layer.lora_A, *layer.lora_B)}
        backbone = sum(p.numel() for p in self.model.parameters() if id(p) not in lora)
        return ParamCount(per, sum(per.values()), backbone)

    # -- routing ------------------------------------------------------------------------
    def routing_for(self, rows: list, allow_unknown: bool = False) -> Routing:
        """Per row: an expert name, None (bare backbone), or {expert: weight} (MoE row).

        An unknown name is refused unless `allow_unknown` (then that row gets the bare backbone).
        """
        if rows and all(not isinstance(r, Mapping) for r in rows):
            return Routing.from_indices([self._row_index(r, allow_unknown) for r in rows], len(self.experts))
        W = torch.zeros(len(rows), len(self.experts))
        for i, r in enumerate(rows):
            if isinstance(r, Mapping):
                for name, w in r.items():
                    j = self._row_index(name, allow_unknown)
                    if j >= 0:
                        W[i, j] += float(w)
            else:
                j = self._row_index(r, allow_unknown)
                if j >= 0:
                    W[i, j] = 1.0
        return Routing.from_weights(W)

    def _row_index(self, name: str | None, allow_unknown: bool) -> int:
        if name is None:
            return -1
        if name in self.experts:
            return self.experts.index(name)
        if allow_unknown:
            return -1
        raise AdapterError(f"no adapter for {name!r} (this run has: {', '.join(self.experts) or 'none'})")

    # -- serving ------------------------------------------------------------------------
    def merge(self, name: str) -> None:
        """Bake expert `name` into the base weights (routing must then be None or that expert)."""
        e = self.index(name)
        for layer in self.layers.values():
            layer.merge(e)

    def unmerge(self) -> None:
        for layer in self.layers.values():
            layer.unmerge()

    # -- helpers ------------------------------------------------------------------------
    def _check_state_dict(self, sd: Mapping[str, torch.Tensor], name: str) -> None:
        want = {self.peft_key(p, w): (l.r, l.in_features) if w == "A" else (l.out_features, l.r)
                for p, l in self.layers.items() for w in "AB"}
        missing = sorted(set(want) - set(sd))
        unexpected = sorted(set(sd) - set(want))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
            raise AdapterError(f"adapter {name!r}: weights do not fit this bank's targets: {'; '.join(parts)}")
        for k, shape in want.items():
            if tuple(sd[k].shape) != shape:
                raise AdapterError(f"adapter {name!r}: {k} has shape {tuple(sd[k].shape)}, expected {shape}"
                                   f" (rank {self.spec.r})")

    def _copy_in(self, e: int, sd: Mapping[str, torch.Tensor]) -> None:
        for path, layer in self.layers.items():
            layer.lora_A[e].copy_(sd[self.peft_key(path, "A")])
            layer.lora_B[e].copy_(sd[self.peft_key(path, "B")])


def target_paths(model: nn.Module, spec: LoraSpec) -> list[str]:
    return [n for n, m in model.named_modules() if spec.matches(n) and isinstance(m, nn.Linear)]


def has_lora(model: nn.Module) -> bool:
    """Whether LoRA layers are injected into `model` (the model itself carries no mark of it)."""
    return any(isinstance(m, LanguageLoRALinear) for m in model.modules())


def inject(model: nn.Module, spec: LoraSpec, languages: Iterable[str] = (), seed: int | None = None) -> LoRABank:
    """Wrap every target linear of `model` in place, freeze the backbone, add `languages`.
    Route its rows with `routing.routed(bank.routing_for(...))` around each forward call."""
    if has_lora(model):
        raise AdapterError("this model already has LoRA layers")
    paths = target_paths(model, spec)
    if not paths:
        raise AdapterError(f"LoRA spec {spec.to_dict()} targets no module of this model")
    model.requires_grad_(False)
    layers = {}
    for path in paths:
        parent_path, _, leaf = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        layer = LanguageLoRALinear(getattr(parent, leaf), spec.r, spec.scale, spec.dropout)
        layer.train(model.training)
        setattr(parent, leaf, layer)
        layers[path] = layer
    bank = LoRABank(model, spec, layers)
    for i, name in enumerate(languages):
        bank.add_language(name, seed=None if seed is None else seed + i)
    return bank


def perturb_experts(bank: LoRABank, std: float, seed: int = 0) -> None:
    """Give every expert a random nonzero B (peft's init has B = 0, i.e. no effect), so tests
    and benchmarks can see experts differ without training them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in bank.layers.values():
            for B in layer.lora_B:
                B.normal_(0.0, std, generator=gen)
