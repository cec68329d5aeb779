"""`run/checkpoints/last.pt`: everything needed to continue a run as if never stopped.

Trainable weights, optimizer and scheduler state, RNG states, the data position (epoch and
micro-batches consumed) and the best dev error so far. Written to a temporary file in the
same directory and renamed over the old one, so a kill at any moment leaves either the old
checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from lora_whisper.atomic import atomic_open
from lora_whisper.errors import UserError

LAST = "last.pt"


def atomic_torch_save(obj, path: Path) -> Path:
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)
    return path


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, state: dict) -> Path:
    return atomic_torch_save(state, Path(run_dir) / "checkpoints" / LAST)


def load_checkpoint(run_dir: Path) -> dict:
    path = Path(run_dir) / "checkpoints" / LAST
    if not path.exists():
        raise UserError(f"{run_dir}: nothing to resume (no checkpoints/{LAST})")
    # Our own file with numpy RNG state inside: not loadable with weights_only.
    return torch.load(path, map_location="cpu", weights_only=False)


def trainable_state(named_params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu").clone() for n, p in named_params.items()}


def load_trainable_state(named_params: dict[str, torch.nn.Parameter], saved: dict[str, torch.Tensor]) -> None:
    if set(saved) != set(named_params):
        missing = sorted(set(named_params) - set(saved))[:3]
        extra = sorted(set(saved) - set(named_params))[:3]
        raise UserError(f"checkpoint does not match this model's trainable weights "
                        f"(missing {missing}, unexpected {extra})")
    with torch.no_grad():
        for n, p in named_params.items():
            p.copy_(saved[n])
