"""Frozen Whisper backbones: the embedded whisper-base, local HF/CT2 dirs, tiny test models."""

# Inference compute types (backbone/quantize.py); here, free of torch, for the CLI's parser.
COMPUTE_TYPES = ("float32", "int8")
