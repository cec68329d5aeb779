"""Flags several commands share (a module starting with "_" is not a command)."""
from __future__ import annotations

from lora_whisper.backbone import COMPUTE_TYPES  # torch-free: the parser builds fast


def add_compute_type(p) -> None:
    p.add_argument("--compute-type", choices=COMPUTE_TYPES, default="float32",
                   help="int8: CPU inference with int8 decoder layers (per-token scales, as "
                        "CTranslate2) and a bfloat16 encoder where the CPU has it; adapters stay float32")


def _whole(text: str, what: str, ok, rule: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a batch of 0 or -1 threads is a typo, not a setting)."""
    return _whole(text, "a whole number", lambda v: v >= 1, "at least 1")


def port_number(text: str) -> int:
    """argparse type: a TCP port (0 lets the system choose one)."""
    return _whole(text, "a port number", lambda v: 0 <= v <= 65535, "between 0 and 65535")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value
def add_routing(p, candidates_flag: str = "--languages") -> None:
    """Candidate languages and the routing policy (inference/routing_policy.py)."""
    p.add_argument(candidates_flag, dest="candidates", default=None,
                   help="candidate languages for detection, e.g. pl,en (default: the run's experts' "
                        "languages, all without a run; 'all': every Whisper language)")
    p.add_argument("--routing", choices=("hard", "soft", "nbest"), default=None,
                   help="when language ID is unsure: soft mixes the top-k languages' experts by their "
                        "probabilities, nbest decodes once per top-k language and keeps the likelier "
                        "hypothesis, hard takes the top language's expert (default: RoutingPolicy's, "
                        "chosen by benchmarks/routing_accuracy.py)")
    p.add_argument("--routing-threshold", type=float, default=None,
                   help="top language probability under which soft/nbest apply (default 0.9)")
    p.add_argument("--top-k", type=int, default=None, help="languages soft/nbest consider (default 2)")
    p.add_argument("--lid", choices=("backbone", "experts"), default=None,
                   help="language ID by the bare backbone, or each candidate scored with its own expert "
                        "(one encoder pass per candidate; default backbone)")
    p.add_argument("--no-per-window", action="store_true",
                   help="long audio: one language per file (its first 30 s) instead of one per window")
    p.add_argument("--cut-on-switch", action="store_true",
                   help="long audio: also end a window where its segments' language changes (measured "
                        "worse on synthetic speech; see benchmarks/README.md)")


def routing_from_args(args):
    """(candidates, RoutingPolicy) from the flags `add_routing` adds; UserError on bad values."""
    from dataclasses import replace

    from lora_whisper.errors import UserError
    from lora_whisper.inference.routing_policy import RoutingPolicy

    changes = {"per_window": not args.no_per_window, "cut_on_switch": args.cut_on_switch}
    for key, flag in (("mode", "routing"), ("threshold", "routing_threshold"), ("top_k", "top_k"), ("lid", "lid")):
        if getattr(args, flag, None) is not None:
            changes[key] = getattr(args, flag)
    try:
        policy = replace(RoutingPolicy(), **changes)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return args.candidates, policy
