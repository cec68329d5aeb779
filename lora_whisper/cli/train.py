"""`lora-whisper train`: a recipe on a training source, into a run directory.

Settings come from defaults, then `--config FILE.toml`, then the flags given here; the flags
are generated from TrainConfig's and LoraSpec's fields. Run it under
`torchrun --nproc_per_node N -m lora_whisper.cli train ...` for data-parallel training.
"""
from __future__ import annotations

from pathlib import Path

from lora_whisper.adapters.config import LoraSpec
from lora_whisper.cli._options import add_config_flags, config_overrides, positive_int
from lora_whisper.training.config import TRAIN_CONFIG_FILE, TrainConfig, load_train_config


def register(sub) -> None:
    p = sub.add_parser("train", help="train LoRA experts (or a baseline) on a data source",
                       description="Recipes: lora-whisper (one expert per language, mixed batches), "
                                   "shared-lora (one expert for all), full-ft (every weight). "
                                   "Unset flags come from --config, then the paper's defaults.")
    p.add_argument("--config", help="TOML file of settings (keys as TrainConfig, [lora] table)")
    add_config_flags(p, TrainConfig)
    add_config_flags(p, LoraSpec, group="LoRA")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads per process")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    import torch

    from lora_whisper.training import train

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = config_overrides(args, TrainConfig, LoraSpec)
    if args.resume and not args.config and args.out:
        # Continuing: the run's own settings are the base, so `--resume --out RUN` is enough.
        saved = Path(args.out) / TRAIN_CONFIG_FILE
        config = (TrainConfig.from_toml(saved) if saved.exists() else TrainConfig()).with_overrides(**overrides)
    else:
        config = load_train_config(args.config, **overrides)
    train(config)
    return 0
