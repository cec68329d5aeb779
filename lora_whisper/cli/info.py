"""`lora-whisper info RUN`: what a run directory holds, from its JSON and file headers only."""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="show a run's experts, parameter counts, backbone and provenance")
    p.add_argument("run", help="run directory (a bank of experts or a fully fine-tuned model)")
    p.add_argument("--backbone", help="also check this backbone (dir or id) against the run's fingerprint")
    p.set_defaults(func=run)


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def run(args) -> int:
    from lora_whisper.adapters.files import WEIGHTS_FILE
    from lora_whisper.adapters.run import read_meta, read_run, run_kind, unrouted_experts, verify_expert

    if run_kind(args.run) == "full-model":
        return _full_model(args, read_meta(args.run))
    info = read_run(args.run)
    spec = info.spec
    print(f"run:       {info.path}")
    print(f"backbone:  {info.backbone_source}")
    print(f"           sha256 {info.backbone_fingerprint}")
    print(f"lora:      r={spec.r} alpha={spec.alpha} (scale {spec.scale:g}) dropout={spec.dropout} "
          f"side={spec.side} targets={','.join(spec.targets)}")
    total = 0
    rows = []
    failures = []
    for name in info.experts:
        problem = verify_expert(info, name)   # every file against its recorded sha256
        if problem is None:
            n = _parameters(info.adapter_dir(name) / WEIGHTS_FILE)
            note = "  ok"
        else:
            failures.append(problem)
            n, note = int(info.entry(name).get("parameters", 0)), "  FAILS: " + problem
        total += n
        rows.append((name, n, note))
    width = max([len(r[0]) for r in rows] + [6])
    print(f"experts:   {len(rows)}")
    for name, n, note in rows:
        print(f"  {name:<{width}}  {n:>12,d} params  {_fmt_bytes(4 * n):>10} fp32{note}")
    print(f"  {'total':<{width}}  {total:>12,d} params  {_fmt_bytes(4 * total):>10} fp32")
    for name in info.experts:
        prov = info.provenance(name)
        if prov:
            print(f"provenance {name}: {json.dumps(prov, sort_keys=True, ensure_ascii=False)}")
    from lora_whisper.languages import LANGUAGES

    for name in unrouted_experts(info, LANGUAGES):
        print(f"warning: expert {name!r} is not a language code and declares no prompt_language: "
              f"no input is routed to it")
    for problem in failures:
        print(f"error: {info.path}: {problem}", file=sys.stderr)
    if args.backbone:
        from lora_whisper.backbone.load import resolve_source, weights_fingerprint

        got = weights_fingerprint(resolve_source(args.backbone)[1])  # hashes files, loads no weights
        same = got == info.backbone_fingerprint
        print(f"backbone check: {args.backbone}: {'matches' if same else 'DIFFERS (sha256 ' + got + ')'}")
        return 0 if same and not failures else 1
    return 1 if failures else 0


def _full_model(args, meta: dict) -> int:
    """A fully fine-tuned run: one model for all its languages, no experts."""
    from pathlib import Path

    model = Path(args.run) / meta.get("model", "model")
    n = sum(_parameters(f) for f in sorted(model.glob("*.safetensors")))
    base = meta.get("base_backbone") or {}
    print(f"run:       {args.run} (full fine-tuning: every weight trained, no experts)")
    print(f"model:     {model}  {n:,d} params  {_fmt_bytes(4 * n)} fp32")
    print(f"from:      {base.get('source')}")
    print(f"           sha256 {base.get('fingerprint')}")
    print(f"languages: {', '.join(meta.get('languages') or [])}")
    if meta.get("provenance"):
        print(f"provenance: {json.dumps(meta['provenance'], sort_keys=True, ensure_ascii=False)}")
    return 0


def _parameters(path) -> int:
    """Parameters in a safetensors file, from its header alone."""
    import math

    from lora_whisper.adapters.files import safetensors_shapes

    return sum(math.prod(shape) for _, shape in safetensors_shapes(path).values())
