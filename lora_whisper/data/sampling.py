"""Seeded subsets of a corpus, shared by training (caps per language) and evaluation."""
from __future__ import annotations

import random

from lora_whisper.data.utterance import Utterance


def subsample(utts: list[Utterance], per_language: int | None, seed: int) -> list[Utterance]:
    """At most `per_language` utterances of each language, a seeded random choice kept in
    source order (the first N of a corpus are often one speaker)."""
    if per_language is None:
        return utts
    rng = random.Random(seed)
    by_lang: dict[str, list[int]] = {}
    for i, u in enumerate(utts):
        by_lang.setdefault(u.language, []).append(i)
    keep = set()
    for idx in by_lang.values():
        keep.update(idx if len(idx) <= per_language else rng.sample(idx, per_language))
    return [u for i, u in enumerate(utts) if i in keep]
