"""Training settings as one frozen dataclass: defaults < TOML file < command-line flags.

A run stores the settings it was trained with as `train_config.toml`, so `--resume` can
refuse to continue with settings that would change the trajectory, and a reader of the run
knows exactly what produced it.

Defaults follow the paper where it says something (AdamW, lr 1e-4, 10 epochs, r=32 on every
attention and FFN projection of encoder and decoder); where it is silent we use common
choices and say so here: alpha = r (scale 1), LoRA dropout 0.05, weight decay 0.01, 10% linear
warm-up then linear decay to 0, gradient clipping at 1.0. Full fine-tuning of all 72M
weights with lr 1e-4 wrecks whisper-base within a few hundred steps, so that recipe defaults
to 1e-5 (Whisper's own fine-tuning guides use 1e-5 for base-size models).
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from lora_whisper.adapters.config import LoraSpec
from lora_whisper.errors import UserError
from lora_whisper.fields import setting

# The settings a run was trained with, in its directory (what --resume compares against).
TRAIN_CONFIG_FILE = "train_config.toml"

# The recipes (training/recipes.py builds each one's plan) and their default learning rates.
DEFAULT_LR = {"lora-whisper": 1e-4, "shared-lora": 1e-4, "full-ft": 1e-5, "shared+experts": 1e-4}
RECIPES = tuple(DEFAULT_LR)

# Settings that may change between an interrupted run and its resumption without changing
# what is computed.
OPERATIONAL = frozenset({"resume", "stop_after_steps", "progress", "num_workers", "log_every",
                         "checkpoint_every", "eval_batch_size"})


class ConfigError(UserError):
    pass


@dataclass(frozen=True)
class TrainConfig:
    # what to train on, and where the run goes
    data: str = setting("", "training source (a manifest, corpus or any reader's layout)")
    dev: str | None = setting(None, "dev source: error measured during training, the best adapters kept")
    languages: tuple[str, ...] = setting((), "comma-separated codes (default: every language in --data)")
    out: str = setting("", "run directory to create (or continue with --resume)")
    backbone: str | None = setting(None, "Whisper directory (default: the embedded whisper-base)")
    recipe: str = setting("lora-whisper", "lora-whisper (one expert per language, mixed batches), "
                          "shared-lora (one expert for all), full-ft (every weight), shared+experts",
                          choices=RECIPES)
    max_train_per_language: int | None = setting(None, "at most N training utterances per language",
                                                 aliases=("--max-train",), minimum=1)
    max_dev_per_language: int | None = setting(50, "at most N dev utterances per language",
                                               aliases=("--max-dev",), minimum=1)
    # optimisation
    epochs: int = setting(10, "passes over the training data", minimum=1)
    max_steps: int | None = setting(None, "optimizer steps (overrides --epochs)", aliases=("--steps",), minimum=1)
    batch_size: int = setting(8, "utterances per micro-batch per process", minimum=1)
    grad_accum: int = setting(1, "micro-batches per optimizer step (global batch = batch size x "
                              "grad accum x processes)", minimum=1)
    lr: float | None = setting(None, "peak learning rate (default: 1e-4; full-ft 1e-5)", minimum=0)
    weight_decay: float = setting(0.01, "AdamW weight decay (not on biases and norms)")
    warmup_steps: int | None = setting(None, "linear warm-up steps (default: 10% of the steps)")
    max_grad_norm: float | None = setting(1.0, "gradient clipping norm", cli=False)
    bf16: bool | None = setting(None, "bf16 autocast (default: where the CPU/GPU supports it natively)")
    pad_30s: bool = setting(False, "pad every clip to 30 s as classic Whisper training does (slow on CPU)")
    seed: int = setting(0, "seed of the data order, adapter init and dropout")
    lora: LoraSpec = setting(help="the LoRA spec: its own flags (--rank, --alpha, --lora-dropout)",
                             factory=LoraSpec, cli=False)
    patience: int | None = setting(None, "early stopping: stop after N dev evaluations without a better "
                                   "dev error (needs --dev; the best adapters are the run's)", minimum=1)
    # bookkeeping
    eval_every: int | None = setting(None, "steps between dev evaluations (default: once an epoch)", minimum=1)
    eval_max_new_tokens: int = setting(128, "token limit of dev decoding", minimum=1)
    eval_batch_size: int = setting(8, "dev decoding batch size", minimum=1)
    log_every: int = setting(10, "steps between metrics.jsonl lines", minimum=1)
    checkpoint_every: int = setting(100, "steps between checkpoints", minimum=1)
    num_workers: int = setting(1, "data loader processes (0: load in the trainer)", minimum=0)
    resume: bool = setting(False, "continue the run from its last checkpoint")
    progress: bool = setting(True, "a progress bar on the terminal")
    stop_after_steps: int | None = setting(None, "debug: return after N steps as if killed there",
                                           minimum=1, cli="hidden")

    def __post_init__(self):
        object.__setattr__(self, "languages", _as_codes(self.languages))
        if isinstance(self.lora, dict):
            object.__setattr__(self, "lora", _lora_from_dict(self.lora))
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r}; valid: {', '.join(RECIPES)}")
        for name in ("epochs", "batch_size", "grad_accum", "log_every", "checkpoint_every",
                     "eval_batch_size", "eval_max_new_tokens"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("max_steps", "eval_every", "max_train_per_language", "max_dev_per_language",
                     "stop_after_steps", "patience"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be at least 1 (or unset), got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}")

    # -- derived values ------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.recipe]

    def with_overrides(self, **changes: Any) -> "TrainConfig":
        """Apply the given (not None) settings; `rank`/`alpha`/`lora_dropout` reach into `lora`."""
        changes = {k: v for k, v in changes.items() if v is not None}
        lora = {}
        for key, spec_key in (("rank", "r"), ("alpha", "alpha"), ("lora_dropout", "dropout"),
                              ("targets", "targets"), ("side", "side")):
            if key in changes:
                lora[spec_key] = changes.pop(key)
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if lora:
            if "r" in lora and "alpha" not in lora and self.lora.alpha == self.lora.r:
                lora["alpha"] = lora["r"]  # keep the scale alpha/r at 1 unless alpha was chosen
            changes["lora"] = _lora_from_dict({**self.lora.to_dict(), **lora})
        return replace(self, **changes)

    # -- files ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("lora")
        d["languages"] = list(self.languages)
        d["lora"] = self.lora.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        # TOML has no null: "none" stands for an unset optional setting (see to_toml).
        d = {k: (None if v == "none" and k in _NONE_ALLOWED else v) for k, v in d.items()}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}; valid: "
                              f"{', '.join(sorted(known))}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def from_toml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(to_toml(self.to_dict()), encoding="utf-8")
        return path

    def trajectory_differences(self, other: "TrainConfig") -> list[str]:
        """Settings that differ and would change what training computes."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if k not in OPERATIONAL and a[k] != b[k]]


def _as_codes(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(v).strip() for v in value if str(v).strip())


def _lora_from_dict(d: dict) -> LoraSpec:
    try:
        return LoraSpec.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[lora]: {exc}") from None


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the TOML file (if any), then the overrides that are not None."""
    base = TrainConfig.from_toml(path) if path else TrainConfig()
    return base.with_overrides(**overrides)


_NONE_ALLOWED = frozenset(f.name for f in fields(TrainConfig) if "None" in str(f.type))
_DEFAULTS = TrainConfig().to_dict()


def to_toml(d: dict) -> str:
    """TOML has no null: an unset setting whose default is unset is left out, one whose
    default is a value is written as "none"."""
    flat = {k: ("none" if v is None else v) for k, v in d.items()
            if not isinstance(v, dict) and (v is not None or _DEFAULTS.get(k) is not None)}
    tables = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in d.items() if isinstance(v, dict)}
    return tomli_w.dumps({**flat, **tables})
