"""Many processes, many machines: inputs split across `torchrun` ranks by length.

`torchrun --nnodes N --nproc_per_node M -m lora_whisper.cli transcribe|evaluate ...` sets
RANK and WORLD_SIZE; each rank takes its share of the inputs and the ranks finish together:
the longest inputs are dealt first, each to the rank with the least audio so far (LPT
scheduling), which every rank computes alike from the same list. Transcription needs no
communication (each rank writes its own files); evaluation gathers the hypotheses to every
rank over gloo and rank 0 writes the one report.
"""
from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence

import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current() -> Rank:
    """This process's place, from torchrun's environment (a world of one without it)."""
    return Rank(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def shard(lengths: Sequence[float], rank: Rank) -> list[int]:
    """Indices of the inputs `rank` takes, in input order: longest first to the least-loaded
    rank (ties: the lower rank; an unknown length counts as 0)."""
    if not rank.distributed:
        return list(range(len(lengths)))
    order = sorted(range(len(lengths)), key=lambda i: (-(lengths[i] or 0.0), i))
    loads = [(0.0, r) for r in range(rank.size)]
    mine = []
    for i in order:
        load, r = heapq.heappop(loads)
        if r == rank.rank:
            mine.append(i)
        heapq.heappush(loads, (load + (lengths[i] or 0.0), r))
    return sorted(mine)


def join(rank: Rank) -> None:
    """The gloo process group, for the ranks' one exchange (evaluation)."""
    if rank.distributed and not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank.rank, world_size=rank.size, timeout=timedelta(hours=6))


def gather(items: list, rank: Rank) -> list:
    """Every rank's `items` concatenated in rank order, on every rank."""
    if not rank.distributed:
        return items

    join(rank)
    parts: list = [None] * rank.size
    dist.all_gather_object(parts, items)
    return [x for p in parts for x in p]


def leave(rank: Rank) -> None:
    if rank.distributed and dist.is_initialized():
        dist.destroy_process_group()
