"""Frozen Whisper backbones: the embedded whisper-base, local HF/CT2 dirs, tiny test models."""

# Inference compute types (backbone/quantize.py); here, free of torch, for the CLI's parser.
COMPUTE_TYPES = ("float32", "int8")


def check_compute_type(compute_type: str) -> str:
    if compute_type not in COMPUTE_TYPES:
        raise ValueError(f"compute type {compute_type!r}: choose one of {', '.join(COMPUTE_TYPES)}")
    return compute_type
