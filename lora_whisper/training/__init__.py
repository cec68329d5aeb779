"""Training: the config (one frozen dataclass; flags generated from its fields), recipes'
plans, one orchestrator and one loop for 1..N processes, resumable checkpoints.
`train(TrainConfig(...))` is the entry point. Exports load on first use
(lora_whisper/lazy.py): the CLI's parser imports `training.config` alone."""
from lora_whisper.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {"train": "run", "TrainConfig": "config"})
__all__ = ["train", "TrainConfig"]
