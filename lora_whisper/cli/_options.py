"""Flags several commands share (a module starting with "_" is not a command)."""
from __future__ import annotations

from lora_whisper.backbone import COMPUTE_TYPES  # torch-free: the parser builds fast


def add_compute_type(p) -> None:
    p.add_argument("--compute-type", choices=COMPUTE_TYPES, default="float32",
                   help="int8: CPU inference with int8 decoder layers (per-token scales, as "
                        "CTranslate2) and a bfloat16 encoder where the CPU has it; adapters stay float32")
