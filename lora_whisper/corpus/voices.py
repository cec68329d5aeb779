"""Which voices may speak which split.

A model fine-tuned on synthetic speech partly learns the voice; if test voices also spoke
the training set, a gain would partly measure memorising them. So the voices are
partitioned: dev and test voices never speak a training utterance.

pyopenjtalk bundles a single voice (mei); it speaks training data only, so Japanese dev
and test stay espeak-ng voices that training never heard.
"""
from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Voice:
    engine: str
    variant: str

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.variant}"


def _voices(engine: str, names: str) -> tuple[Voice, ...]:
    return tuple(Voice(engine, n) for n in names.split())


# espeak-ng's 13 human-like variants (m1..m8, f1..f5), split 8 / 2 / 3
VOICE_SPLITS: dict[str, dict[str, tuple[Voice, ...]]] = {
    "espeak": {
        "train": _voices("espeak", "m1 m2 m3 m4 m5 f1 f2 f3"),
        "dev": _voices("espeak", "m6 f4"),
        "test": _voices("espeak", "m7 m8 f5"),
    },
    "pyopenjtalk": {"train": _voices("pyopenjtalk", "mei"), "dev": (), "test": ()},
}


def voices_for(split: str, engines: list[str] | tuple[str, ...]) -> list[Voice]:
    """Every voice that may speak `split`, over the engines that serve the language."""
    out: list[Voice] = []
    for engine in engines:
        out.extend(VOICE_SPLITS.get(engine, {}).get(split, ()))
    return out


def check_disjoint() -> None:
    """Guards edits to the table above: a voice in two splits breaks the benchmark."""
    seen: dict[Voice, str] = {}
    for table in VOICE_SPLITS.values():
        for split, voices in table.items():
            for v in voices:
                if seen.setdefault(v, split) != split:
                    raise AssertionError(f"voice {v.name} is in {seen[v]} and {split}")


check_disjoint()
