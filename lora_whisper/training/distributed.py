"""Process-group setup for `torchrun` (env RANK/WORLD_SIZE/LOCAL_RANK), and the two
collectives the loop needs.

Gradients are all-reduced by hand rather than through DistributedDataParallel: the bank's
experts that a batch does not route to get no gradient, which DDP only tolerates with
`find_unused_parameters` (a graph walk per step), and a hand-written sum over one flat
buffer keeps the single-process and multi-process arithmetic the same, which the
equivalence test relies on.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from lora_whisper.inference.sharding import Rank


@dataclass(frozen=True)
class World(Rank):
    """A rank (inference/sharding.py) that trains: its local rank and device too."""
    local_rank: int = 0
    device: torch.device = torch.device("cpu")


def setup(device: str | None = None) -> World:
    """Join the process group if launched by torchrun; else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if size > 1 and not dist.is_initialized():
        # Rank 0 alone decodes the dev set while the others wait at a barrier: allow for it.
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=size,
                                timeout=timedelta(hours=2))
    return World(rank, size, local, dev)


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(device: str | None = None):
    """The process world for one command: joined on entry, left on exit by whoever joined it
    (a caller already inside a session, e.g. add-language around the orchestrator, keeps it)."""
    owner = not dist.is_initialized()
    world = setup(device)
    try:
        yield world
    finally:
        if owner:
            teardown(world)


def all_reduce_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def sum_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Make every parameter's grad the sum over ranks (a missing grad counts as zeros, so
    every rank and the single-process run hand the optimizer the same set of grads)."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not world.distributed:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
