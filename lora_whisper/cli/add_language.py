"""`lora-whisper add-language`: train one new language into a run (random, warm start, LoRA
MoE), or fully fine-tune on it into a separate run (the forgetting baseline). The run's
existing experts are never written; their checksums are verified before and after."""
from __future__ import annotations

import argparse
import json

from lora_whisper.cli._options import positive_float, positive_int


def register(sub) -> None:
    p = sub.add_parser("add-language", help="add a new language's expert to a trained run",
                       description="random: fresh expert; warm: copy of the most similar language's "
                                   "expert; moe: own expert + frozen experts of the top-k similar "
                                   "languages weighted by similarity; full-ft: fine-tune every weight "
                                   "into --out (the baseline that forgets).")
    p.add_argument("--run", required=True, help="trained run directory")
    p.add_argument("--language", required=True, help="the new language's code (a new code needs --prompt-language)")
    p.add_argument("--data", required=True, help="training source holding the new language")
    p.add_argument("--dev", help="dev source: the best dev adapters are kept (default: the final ones)")
    p.add_argument("--init", required=True, choices=("random", "warm", "moe", "full-ft"))
    p.add_argument("--top-k", type=positive_int, default=2, help="moe: how many similar languages join (default 2)")
    p.add_argument("--learned-gates", action="store_true", help="moe: train the mixture weights too")
    p.add_argument("--prompt-language", help="Whisper language token the new language's prompts use "
                                             "(required for a code Whisper does not know)")
    p.add_argument("--out", help="write a new run here (copy of --run + the language); full-ft requires it")
    p.add_argument("--similarity-utterances", type=positive_int, default=50, help="utterances for the similarity (default 50)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--steps", dest="max_steps", type=positive_int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--grad-accum", type=positive_int)
    p.add_argument("--lr", type=positive_float, help="peak learning rate (default 1e-4; full-ft 1e-5)")
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--eval-every", type=positive_int)
    p.add_argument("--max-train", dest="max_train_per_language", type=positive_int, help="at most N training utterances")
    p.add_argument("--max-dev", dest="max_dev_per_language", type=positive_int, help="at most N dev utterances")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_add_language)


_TRAIN = ("epochs", "max_steps", "batch_size", "grad_accum", "lr", "warmup_steps", "eval_every",
          "max_train_per_language", "max_dev_per_language", "bf16", "num_workers", "seed", "progress")


def run_add_language(args) -> int:
    import torch

    from lora_whisper.expansion import add_language

    if args.threads:
        torch.set_num_threads(args.threads)
    res = add_language(args.run, args.language, args.data, init=args.init, dev=args.dev, out=args.out,
                       top_k=args.top_k, learned_gates=args.learned_gates,
                       prompt_language=args.prompt_language,
                       similarity_utterances=args.similarity_utterances,
                       train={k: getattr(args, k) for k in _TRAIN})
    summary = {"run": str(res.run), "language": res.language, "init": res.init,
               "prompt_language": res.prompt_language, "steps": res.steps, "best_dev_error": res.best_error,
               "warm_from": res.warm_from, "mixture": res.mixture,
               "similarity": res.similarity.to_dict()["scores"] if res.similarity else None}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"{res.language} added to {res.run} (init {res.init}"
              + (f", warm start from {res.warm_from}" if res.warm_from else "")
              + (f", mixture {json.dumps(res.mixture)}" if res.mixture else "")
              + (f", prompt <|{res.prompt_language}|>" if res.prompt_language != res.language else "") + ")")
    return 0
