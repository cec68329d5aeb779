"""`lora-whisper export`: one language's expert merged into a plain Whisper (HF or CTranslate2)."""
from __future__ import annotations


def register(sub) -> None:
    from_ = "merge one language's expert (or MoE mixture) into a plain Whisper directory"
    p = sub.add_parser("export", help=from_, description=from_)
    p.add_argument("--run", required=True, help="the run directory")
    p.add_argument("--language", required=True, help="the expert to merge")
    p.add_argument("--format", choices=("hf", "ct2"), default="hf",
                   help="hf: transformers directory; ct2: CTranslate2 directory for faster-whisper")
    p.add_argument("--quantization", default=None,
                   help="ct2 only: float32 (default), int8, int8_float32, float16, int8_float16, bfloat16")
    p.add_argument("--backbone", default=None, help="where the run's backbone is, if not where the run says")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from lora_whisper.export import export

    out = export(args.run, args.language, args.out, fmt=args.format, quantization=args.quantization,
                 backbone_source=args.backbone, force=args.force)
    print(out)
    return 0
