"""`lora-whisper similarity`: how close a new language is to each language of a run, by
Whisper's own language ID (bare backbone), as warm start and LoRA MoE use it."""
from __future__ import annotations

import json

from lora_whisper.cli._options import positive_int


def register(sub) -> None:
    p = sub.add_parser("similarity", help="rank a run's languages by similarity to a new language",
                       description="Whisper's language ID (backbone only, no adapters) on the new "
                                   "language's audio; the mean probability of each of the run's "
                                   "languages, renormalised over them.")
    p.add_argument("--run", required=True, help="trained run directory")
    p.add_argument("--data", required=True, help="source with the new language's audio")
    p.add_argument("--language", help="the new language's code (needed when --data holds several)")
    p.add_argument("--max-utterances", type=positive_int, default=50, help="utterances to listen to (default 50)")
    p.add_argument("--seed", type=int, default=0, help="which utterances, when there are more")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--pad-30s", action="store_true", help="pad clips to 30 s as classic Whisper does")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_similarity)


def run_similarity(args) -> int:
    import torch

    from lora_whisper.errors import UserError
    from lora_whisper.expansion.similarity import format_table, similarity_for_run

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.max_utterances is not None and args.max_utterances < 1:
        raise UserError("--max-utterances must be at least 1")
    sim, code = similarity_for_run(args.run, args.data, args.language, args.max_utterances, args.seed,
                                   args.batch_size, args.pad_30s)
    if args.json:
        print(json.dumps({"language": code, "run": args.run, **sim.to_dict(),
                          "ranking": [c for c, _ in sim.ranked()]}, ensure_ascii=False))
    else:
        print(format_table(sim, code))
    return 0
