"""`lora-whisper add-language`: train one new language into a run (random, warm start, LoRA
MoE), or fully fine-tune on it into a separate run (the forgetting baseline). The run's
existing experts are never written; their checksums are verified before and after.

Flags are generated from AddLanguageConfig's fields and TrainConfig's (the ones the
expansion plan does not set itself), so they are train's flags, with train's names. Runs
under `torchrun --nproc_per_node N -m lora_whisper.cli -- add-language --run RUN ...` as train
does (the `--` keeps torchrun's parser from reading --run as an abbreviation of its --run-path).
"""
from __future__ import annotations

import json
from pathlib import Path

from lora_whisper.cli._options import add_config_flags, config_overrides, positive_int
from lora_whisper.expansion.config import PLANNED, WORK_DIR, AddLanguageConfig
from lora_whisper.languages import normalize_code
from lora_whisper.training.config import TRAIN_CONFIG_FILE, TrainConfig, load_train_config

def register(sub) -> None:
    p = sub.add_parser("add-language", help="add a new language's expert to a trained run",
                       description="random: fresh expert; warm: copy of the most similar language's "
                                   "expert; moe: own expert + frozen experts of the top-k similar "
                                   "languages weighted by similarity; full-ft: fine-tune every weight "
                                   "into --out (the baseline that forgets). An interrupted attempt "
                                   "continues with --resume.")
    add_config_flags(p, AddLanguageConfig)
    p.add_argument("--config", help="TOML file of training settings (keys as TrainConfig)")
    add_config_flags(p, TrainConfig, exclude=PLANNED, group="training")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_add_language)


def run_add_language(args) -> int:
    import torch

    from lora_whisper.expansion import add_language

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = config_overrides(args, TrainConfig, exclude=PLANNED)
    saved = Path(args.out or args.run) / WORK_DIR / normalize_code(args.language) / TRAIN_CONFIG_FILE
    if args.resume and not args.config and saved.exists():
        # Continuing: the attempt's own settings are the base, as `train --resume` does.
        train = TrainConfig.from_toml(saved).with_overrides(**overrides)
    else:
        train = load_train_config(args.config, **overrides)
    given = {k: v for k, v in config_overrides(args, AddLanguageConfig).items() if v is not None}
    res = add_language(AddLanguageConfig(**given, train=train))
    summary = {"run": str(res.run), "language": res.language, "init": res.init,
               "prompt_language": res.prompt_language, "steps": res.steps, "best_dev_error": res.best_error,
               "warm_from": res.warm_from, "mixture": res.mixture,
               "similarity": res.similarity.to_dict()["scores"] if res.similarity else None}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    elif res.provenance:
        print(f"{res.language} added to {res.run} (init {res.init}"
              + (f", warm start from {res.warm_from}" if res.warm_from else "")
              + (f", mixture {json.dumps(res.mixture)}" if res.mixture else "")
              + (f", prompt <|{res.prompt_language}|>" if res.prompt_language != res.language else "") + ")")
    return 0
