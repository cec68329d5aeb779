"""Seeds and significance for benchmark tables: mean +/- sd over training seeds, and a paired
bootstrap over test utterances (Koehn 2004; Bisani & Ney 2004) of one system against another.

Why ours: the resampling unit is the utterance *within its language* (stratified), and the
statistic is the macro error of the tables (mean over languages of corpus-level error, total
edits / total reference units); the common packages bootstrap a single corpus WER.
Several seeds of one system are averaged per utterance first (edit counts over seeds), so
the test asks whether the systems differ on these test utterances, beyond seed noise.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

# per language: (edits per utterance, reference length per utterance), utterances aligned
Errors = dict[str, tuple[np.ndarray, np.ndarray]]


def read_hyps(path: str | Path, clipped: bool = False) -> dict[str, tuple[str, float, int]]:
    """hyps.jsonl of an evaluation -> {utterance id: (language, edits, reference length)}."""
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        h = json.loads(line)
        errors, length = float(h["errors"]), int(h["length"])
        if clipped:
            errors = min(errors, max(length, 1 if errors else 0))
        out[h["id"]] = (h["language"], errors, length)
    return out


def seed_mean_errors(runs: Sequence[Mapping[str, tuple[str, float, int]]], ids: Sequence[str] | None = None) -> Errors:
    """Average the edit counts of several seeds' hyps per utterance; aligned by sorted id."""
    if not runs:
        raise ValueError("no runs")
    ids = sorted(ids if ids is not None else runs[0])
    for r in runs:
        missing = [i for i in ids if i not in r]
        if missing:
            raise ValueError(f"a run has no hypothesis for {len(missing)} utterance(s), e.g. {missing[0]}")
    by_lang: dict[str, list[str]] = {}
    for i in ids:
        by_lang.setdefault(runs[0][i][0], []).append(i)
    out: Errors = {}
    for lang, lang_ids in by_lang.items():
        errs = np.array([[r[i][1] for i in lang_ids] for r in runs], dtype=np.float64).mean(axis=0)
        lens = np.array([runs[0][i][2] for i in lang_ids], dtype=np.float64)
        out[lang] = (errs, lens)
    return out


def macro_error(errors: Errors) -> float:
    vals = [100.0 * e.sum() / max(n.sum(), 1.0) for e, n in errors.values()]
    return float(np.mean(vals)) if vals else float("nan")


@dataclass(frozen=True)
class BootstrapResult:
    delta: float               # macro error of a minus b (negative: a is better)
    ci95: tuple[float, float]  # percentile interval of the delta
    p_value: float             # two-sided: how often the resampled delta falls on the other side of 0
    n_boot: int

    def to_dict(self) -> dict:
        return {"delta": round(self.delta, 4), "ci95": [round(self.ci95[0], 4), round(self.ci95[1], 4)],
                "p_value": round(self.p_value, 5), "n_boot": self.n_boot}


def paired_bootstrap(a: Errors, b: Errors, n_boot: int = 10_000, seed: int = 0) -> BootstrapResult:
    """Resample each language's utterances with replacement (the same draw for a and b) and
    recompute the macro-error difference."""
    if set(a) != set(b):
        raise ValueError(f"systems scored different languages: {sorted(a)} vs {sorted(b)}")
    rng = np.random.default_rng(seed)
    deltas = np.zeros(n_boot)
    for lang in sorted(a):
        ea, na = a[lang]
        eb, nb = b[lang]
        if len(ea) != len(eb) or not np.array_equal(na, nb):
            raise ValueError(f"{lang}: the systems scored different utterances")
        idx = rng.integers(0, len(ea), size=(n_boot, len(ea)))
        length = na[idx].sum(axis=1)
        length[length == 0] = 1.0
        deltas += 100.0 * (ea[idx].sum(axis=1) - eb[idx].sum(axis=1)) / length
    deltas /= len(a)
    delta = macro_error(a) - macro_error(b)
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    # two-sided, with the +1 correction so a p-value is never exactly 0
    tail = min((deltas >= 0).sum(), (deltas <= 0).sum())
    p = min(1.0, 2.0 * (tail + 1) / (n_boot + 1))
    return BootstrapResult(float(delta), (float(lo), float(hi)), float(p), n_boot)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = [float(x) for x in values]
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd
