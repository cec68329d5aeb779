"""Training: recipes (lora-whisper, shared-lora, full-ft), one loop for 1..N processes,
resumable checkpoints. `train(TrainConfig(...))` is the entry point."""
from __future__ import annotations


def train(config, backbone=None):
    from lora_whisper.training.run import train as _train

    return _train(config, backbone=backbone)


__all__ = ["train"]
