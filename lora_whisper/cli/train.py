"""`lora-whisper train`: a recipe on a training source, into a run directory.

Settings come from defaults, then `--config FILE.toml`, then the flags given here. Run it
under `torchrun --nproc_per_node N -m lora_whisper.cli train ...` for data-parallel training.
"""
from __future__ import annotations

import argparse

from lora_whisper.cli._options import positive_float, positive_int

from lora_whisper.config import RECIPES


def register(sub) -> None:
    p = sub.add_parser("train", help="train LoRA experts (or a baseline) on a data source",
                       description="Recipes: lora-whisper (one expert per language, mixed batches), "
                                   "shared-lora (one expert for all), full-ft (every weight). "
                                   "Unset flags come from --config, then the paper's defaults.")
    p.add_argument("--data", help="training source (manifest or corpus)")
    p.add_argument("--dev", help="dev source: error measured during training, best adapters kept")
    p.add_argument("--languages", help="comma-separated codes (default: all in --data)")
    p.add_argument("--recipe", choices=RECIPES)
    p.add_argument("--out", help="run directory to create (or continue with --resume)")
    p.add_argument("--config", help="TOML file of settings (keys as TrainConfig, [lora] table)")
    p.add_argument("--backbone", help="Whisper dir (default: embedded whisper-base)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--max-steps", type=positive_int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=positive_int, help="utterances per micro-batch per process (default 8)")
    p.add_argument("--grad-accum", type=positive_int, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate (default 1e-4; full-ft 1e-5)")
    p.add_argument("--warmup-steps", type=int, help="default: 10%% of the steps")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--rank", type=positive_int, help="LoRA rank r (default 32)")
    p.add_argument("--alpha", type=float, help="LoRA alpha (default: = rank)")
    p.add_argument("--lora-dropout", type=float)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: where the CPU/GPU supports it)")
    p.add_argument("--pad-30s", action=argparse.BooleanOptionalAction, default=None,
                   help="pad every clip to 30 s as classic Whisper training does (slow on CPU)")
    p.add_argument("--eval-every", type=positive_int, help="steps between dev evaluations (default: each epoch)")
    p.add_argument("--patience", type=positive_int, help="early stopping: stop after N dev evaluations without a "
                                                "better dev error (the best adapters are the run's)")
    p.add_argument("--eval-max-new-tokens", type=positive_int)
    p.add_argument("--max-dev-per-language", type=positive_int)
    p.add_argument("--checkpoint-every", type=positive_int, help="steps between checkpoints (default 100)")
    p.add_argument("--log-every", type=positive_int)
    p.add_argument("--num-workers", type=int, help="data loader processes (default 1)")
    p.add_argument("--resume", action="store_true", default=None, help="continue RUN from its last checkpoint")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-train-per-language", type=positive_int)
    p.add_argument("--threads", type=positive_int, help="torch CPU threads per process")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--stop-after-steps", type=int, help=argparse.SUPPRESS)  # debug: simulate a kill
    p.set_defaults(func=run_train)


_FIELDS = ("data", "dev", "languages", "recipe", "out", "backbone", "epochs", "max_steps", "batch_size",
           "grad_accum", "lr", "warmup_steps", "weight_decay", "rank", "alpha", "lora_dropout", "bf16",
           "pad_30s", "eval_every", "eval_max_new_tokens", "max_dev_per_language", "checkpoint_every",
           "log_every", "num_workers", "resume", "seed", "max_train_per_language", "progress",
           "stop_after_steps", "patience")


def run_train(args) -> int:
    import torch

    from lora_whisper.config import TrainConfig, load_train_config
    from lora_whisper.training import train

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in _FIELDS}
    if args.resume and not args.config and args.out:
        # Continuing: the run's own settings are the base, so `--resume --out RUN` is enough.
        from pathlib import Path

        saved = Path(args.out) / "train_config.toml"
        config = (TrainConfig.from_toml(saved) if saved.exists() else TrainConfig()).with_overrides(**overrides)
    else:
        config = load_train_config(args.config, **overrides)
    train(config)
    return 0
