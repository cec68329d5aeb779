"""Frozen Whisper backbones: the embedded whisper-base, local HF/CT2 dirs, tiny test models."""
