"""Randomness keyed by name, not by draw order.

Every random choice about an utterance comes from a generator seeded by (build seed,
utterance id, purpose), so the audio of one utterance is the same whichever worker makes
it, in whatever order, and whether or not the others were made in the same run.
"""
from __future__ import annotations

import hashlib

import numpy as np


def key_words(*keys: object) -> tuple[int, ...]:
    digest = hashlib.sha256("\x1f".join(map(str, keys)).encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i: i + 4], "little") for i in range(0, 16, 4))


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key_words(*keys)))


def rank(seed: int, *keys: object) -> str:
    """A stable sort key: sorting by it is a seeded shuffle that does not move an item
    when others are added or removed."""
    return hashlib.sha256("\x1f".join(map(str, (seed, *keys))).encode("utf-8")).hexdigest()
