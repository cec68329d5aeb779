"""Deal each language's sentences into train / dev / test, no sentence in two splits.

Sentences are ordered by a seeded hash of their normalised text, then test takes the
first ones, dev the next, train the rest. Asking for more training data later only
appends to train: the test set of a seed stays the same.
"""
from __future__ import annotations

from lora_whisper.corpus.filters import clean_sentences, dedup_key
from lora_whisper.corpus.rng import rank
from lora_whisper.errors import UserError


def assign_splits(
    sentences: list[str], lang: str, seed: int, counts: dict[str, int]
) -> dict[str, list[str]]:
    """`counts` maps split -> how many; dealt in the order test, dev, train."""
    pool = clean_sentences(sentences, lang, check=False)  # de-dup: no twin across splits
    ordered = sorted(pool, key=lambda s: rank(seed, lang, dedup_key(s)))
    need = sum(counts.values())
    if need > len(ordered):
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        raise UserError(
            f"language {lang!r} has {len(ordered)} distinct sentences but {need} were asked "
            f"for ({detail}); lower --per-language / --dev-per-language / --test-per-language"
        )
    out: dict[str, list[str]] = {}
    start = 0
    for split in ("test", "dev", "train"):
        n = counts.get(split, 0)
        out[split] = ordered[start: start + n]
        start += n
    return out
