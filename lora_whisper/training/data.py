"""Training and dev utterances for a run, checked before any weight moves.

A run that would fail an hour in (a language with no training audio, a code the backbone
does not know, a missing file) fails here, with the counts it found; an undecodable clip or a
transcript too long for the decoder is skipped here with a count (screen.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from lora_whisper.data.readers import open_source
from lora_whisper.data.sampling import subsample
from lora_whisper.data.utterance import Utterance
from lora_whisper.errors import UserError
from lora_whisper.training.screen import screen


@dataclass(frozen=True)
class RunData:
    languages: list[str]            # the run's languages, in the order given (or sorted)
    train: list[Utterance]
    dev: list[Utterance]
    durations: list[float]          # per training utterance, seconds

    def fingerprint(self) -> str:
        """sha256 of what training reads: each row's id, language, text, measured duration and
        audio file size, and the dev rows. A resume compares it with its checkpoint's."""

        def size(u):
            try:
                return os.path.getsize(u.audio)
            except (OSError, TypeError):
                return None

        rows = [[u.id, u.language, u.text, round(d, 3), size(u)] for u, d in zip(self.train, self.durations)]
        dev = [[u.id, u.language, u.text, size(u)] for u in self.dev]
        blob = json.dumps({"languages": self.languages, "train": rows, "dev": dev}, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


def _counts(utts: Sequence[Utterance]) -> str:
    c = Counter(u.language for u in utts)
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0]))) or "none"


def load_run_data(train_spec: str, dev_spec: str | None, languages: Sequence[str], vocab,
                  max_train_per_language: int | None = None, max_dev_per_language: int | None = None,
                  seed: int = 0, log=print) -> RunData:
    if not train_spec:
        raise UserError("no training data: give --data (a manifest or corpus)")
    # Codes first: an unknown one should not wait for a corpus scan.
    wanted = [vocab.check_language(c) for c in languages]
    if len(set(wanted)) != len(wanted):
        raise UserError(f"language listed twice in {', '.join(languages)}")
    train = open_source(train_spec)
    present = sorted({u.language for u in train})
    langs = wanted or present
    missing = [c for c in langs if c not in present]
    if missing:
        raise UserError(f"no training utterances for {', '.join(missing)} in {train_spec} "
                        f"(it has: {_counts(train)})")
    unused = [c for c in present if c not in langs]
    if unused:
        log(f"note: ignoring {sum(u.language in unused for u in train)} training utterances "
            f"in languages not asked for ({', '.join(unused)})", file=sys.stderr)
    train = subsample([u for u in train if u.language in langs], max_train_per_language, seed)
    checked = screen(train, vocab)
    if checked.skipped:
        log(checked.note("training", len(train)), file=sys.stderr)
    emptied = [c for c in langs if not any(u.language == c for u in checked.kept)]
    if emptied:
        raise UserError(f"no usable training utterances left for {', '.join(emptied)} in {train_spec} "
                        f"({checked.note('training', len(train))[len('note: '):]})")
    train = checked.kept
    dev: list[Utterance] = []
    if dev_spec:
        dev = [u for u in open_source(dev_spec) if u.language in langs]
        no_dev = [c for c in langs if not any(u.language == c for u in dev)]
        if not dev:
            raise UserError(f"no dev utterances in {dev_spec} for {', '.join(langs)}")
        if no_dev:
            log(f"note: no dev utterances for {', '.join(no_dev)}; the dev error averages "
                f"the other languages", file=sys.stderr)
        dev = subsample(dev, max_dev_per_language, seed)
        checked_dev = screen(dev, vocab)
        if checked_dev.skipped:
            log(checked_dev.note("dev", len(dev)), file=sys.stderr)
        dev = checked_dev.kept
    return RunData(langs, train, dev, checked.durations)
