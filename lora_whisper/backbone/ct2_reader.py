"""Reader for CTranslate2's `model.bin` (binary version 6).

ctranslate2 itself can load the file but exposes no API to read the weights back as arrays,
so the format (documented in ../shared/ASSETS.md and ctranslate2's `specs/model_spec.py`)
is parsed here: u32 version; spec name; u32 revision; u32 count; per variable name, rank,
shape, dtype, byte count and raw bytes; then aliases.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BF16 = 5


class CT2FormatError(ValueError):
    pass


def _u8(f: BinaryIO) -> int:
    return struct.unpack("<B", f.read(1))[0]


def _u16(f: BinaryIO) -> int:
    return struct.unpack("<H", f.read(2))[0]


def _u32(f: BinaryIO) -> int:
    return struct.unpack("<I", f.read(4))[0]


def _string(f: BinaryIO) -> str:
    n = _u16(f)
    return f.read(n).rstrip(b"\0").decode("utf-8")


def read_model_bin(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Return (spec name, {variable name: array}); aliases resolve to their target's array."""
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        version = _u32(f)
        if version < 5:
            raise CT2FormatError(f"{path}: unsupported CTranslate2 model version {version}")
        spec = _string(f)
        _u32(f)  # spec revision
        for _ in range(_u32(f)):
            name = _string(f)
            rank = _u8(f)
            shape = tuple(_u32(f) for _ in range(rank))
            dtype_id = _u8(f)
            nbytes = _u32(f)
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise CT2FormatError(f"{path}: truncated at variable {name!r}")
            if dtype_id == _BF16:
                arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dtype_id in _DTYPES:
                arr = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
            else:
                raise CT2FormatError(f"{path}: unknown dtype id {dtype_id} for {name!r}")
            variables[name] = arr.reshape(shape)
        for _ in range(_u32(f)):
            alias, target = _string(f), _string(f)
            variables[alias] = variables[target]
    return spec, variables
