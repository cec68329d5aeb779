"""The LoRA spec shared by every expert of a bank, and which Whisper linears it targets.

Mirrors peft's `tuners/lora/config.py` in role. The paper does not state alpha or dropout;
our defaults are r=32 (4,325,376 parameters per language on whisper-base), alpha=32 (so the
scale alpha/r is 1 and the update is exactly B A) and dropout 0.05, peft's common choice.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from lora_whisper.fields import setting

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
_ATTN = ("q_proj", "k_proj", "v_proj", "out_proj")
_FFN = ("fc1", "fc2")
SIDES = ("both", "encoder", "decoder")

# Every candidate linear inside a Whisper layer: `model.{encoder,decoder}.layers.N.<tail>`.
_LAYER_RE = re.compile(r"model\.(encoder|decoder)\.layers\.(\d+)\.(.+)")
_TAILS = {
    "encoder": tuple(f"self_attn.{p}" for p in _ATTN) + _FFN,
    "decoder": tuple(f"self_attn.{p}" for p in _ATTN) + tuple(f"encoder_attn.{p}" for p in _ATTN) + _FFN,
}


@dataclass(frozen=True)
class LoraSpec:
    """r, alpha, dropout, targets, side.

    A target is a leaf name (`q_proj` hits self- and cross-attention) or a dotted tail
    (`encoder_attn.q_proj`, `self_attn.v_proj`) to pick one attention kind.
    """
    r: int = setting(32, "LoRA rank r", flag="--rank", dest="rank", minimum=1)
    alpha: float = setting(32, "LoRA alpha; the update is scaled by alpha/r (default: = rank)")
    dropout: float = setting(0.05, "dropout on the LoRA input", flag="--lora-dropout", dest="lora_dropout")
    targets: tuple[str, ...] = setting(DEFAULT_TARGETS, "comma-separated target linears (leaf names or "
                                       "dotted tails such as encoder_attn.q_proj)", flag="--lora-targets",
                                       dest="targets")
    side: str = setting("both", "adapt the encoder, the decoder or both", flag="--lora-side", dest="side",
                        choices=SIDES)

    def __post_init__(self):
        object.__setattr__(self, "targets", tuple(self.targets))
        if int(self.r) != self.r or self.r < 1:
            raise ValueError(f"LoRA rank must be a positive integer, got {self.r!r}")
        if self.side not in SIDES:
            raise ValueError(f"LoRA side must be one of {', '.join(SIDES)}, got {self.side!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        valid = set(_TAILS["decoder"]) | {t.split(".")[-1] for t in _TAILS["decoder"]}
        bad = [t for t in self.targets if t not in valid]
        if bad or not self.targets:
            raise ValueError(f"unknown LoRA target(s) {bad or '(none)'}; valid: {', '.join(sorted(valid))}")

    @property
    def scale(self) -> float:
        return self.alpha / self.r

    def matches(self, module_name: str) -> bool:
        """Is `model.encoder.layers.0.self_attn.q_proj` (a Whisper module path) a target?"""
        m = _LAYER_RE.fullmatch(module_name)
        if not m:
            return False
        side, _, tail = m.groups()
        if self.side != "both" and side != self.side or tail not in _TAILS[side]:
            return False
        return any(tail == t or tail.endswith("." + t) for t in self.targets)

    def peft_target_regex(self) -> str:
        """A `target_modules` regex that peft fullmatches against exactly our target paths."""
        sides = ("encoder", "decoder") if self.side == "both" else (self.side,)
        parts = []
        for side in sides:
            tails = [t for t in _TAILS[side] if any(t == x or t.endswith("." + x) for x in self.targets)]
            if tails:
                parts.append(rf"model\.{side}\.layers\.\d+\.({'|'.join(re.escape(t) for t in tails)})")
        return parts[0] if len(parts) == 1 else "(" + "|".join(parts) + ")"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LoraSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown LoRA spec field(s): {', '.join(sorted(unknown))}")
        return cls(**d)
