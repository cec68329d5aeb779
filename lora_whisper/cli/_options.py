"""Flags several commands share (a module starting with "_" is not a command)."""
from __future__ import annotations

from lora_whisper.backbone import COMPUTE_TYPES  # torch-free: the parser builds fast


def add_compute_type(p) -> None:
    p.add_argument("--compute-type", choices=COMPUTE_TYPES, default="float32",
                   help="int8: CPU inference with int8 decoder layers (per-token scales, as "
                        "CTranslate2) and a bfloat16 encoder where the CPU has it; adapters stay float32")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a batch of 0 or -1 threads is a typo, not a setting)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port (0 lets the system choose one)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


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
