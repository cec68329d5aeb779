"""Linear warm-up to the peak learning rate, then linear decay to zero at the last step."""
from __future__ import annotations

import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak lr for optimizer step `step` (0-based)."""
    if step < warmup_steps:
        # (step + 1) so the first step already moves (nanoGPT's convention).
        return (step + 1) / (warmup_steps + 1)
    remaining = total_steps - step
    span = max(1, total_steps - warmup_steps)
    return max(0.0, remaining / span)


def default_warmup(total_steps: int) -> int:
    return max(1, round(0.1 * total_steps)) if total_steps > 1 else 0


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                   warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps))
