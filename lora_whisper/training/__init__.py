"""Training: recipes (lora-whisper, shared-lora, full-ft), one orchestrator and one loop for
1..N processes, resumable checkpoints. `train(TrainConfig(...))` is the entry point."""
from __future__ import annotations

from lora_whisper.training.run import train

__all__ = ["train"]
