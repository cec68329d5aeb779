"""Paired bootstrap and seed averaging behave as statistics should."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lora_whisper.evaluation.significance import (macro_error, mean_sd, paired_bootstrap, read_hyps,
                                                   seed_mean_errors)


def _errors(rng, n, rate, langs=("pl", "it")):
    out = {}
    for lang in langs:
        lens = rng.integers(5, 15, n).astype(float)
        out[lang] = (rng.binomial(lens.astype(int), rate).astype(float), lens)
    return out


def test_a_clearly_better_system_is_significant_and_identical_ones_are_not():
    rng = np.random.default_rng(0)
    worse = _errors(rng, 200, 0.30)
    better = {k: (np.floor(e * 0.6), n) for k, (e, n) in worse.items()}
    r = paired_bootstrap(better, worse, n_boot=2000)
    assert r.delta < 0 and r.ci95[1] < 0 and r.p_value < 0.01
    same = paired_bootstrap(worse, worse, n_boot=2000)
    assert same.delta == 0 and same.p_value == 1.0


def test_noise_of_the_same_rate_is_rarely_significant():
    hits = 0
    for s in range(20):
        rng = np.random.default_rng(100 + s)
        a = _errors(rng, 60, 0.25)
        b = {k: (rng.binomial(n.astype(int), 0.25).astype(float), n) for k, (_, n) in a.items()}
        hits += paired_bootstrap(a, b, n_boot=1000, seed=s).p_value < 0.05
    assert hits <= 4  # ~5% expected at the 0.05 level


def test_macro_error_weights_languages_equally():
    e = {"pl": (np.array([1.0, 1.0]), np.array([10.0, 10.0])), "zh": (np.array([30.0]), np.array([100.0]))}
    assert macro_error(e) == pytest.approx((10.0 + 30.0) / 2)


def test_seed_mean_errors_reads_hyps_and_averages_seeds(tmp_path):
    rows = [[{"id": "a", "language": "pl", "errors": e, "length": 4},
             {"id": "b", "language": "pl", "errors": 0, "length": 2}] for e in (1, 3)]
    runs = []
    for i, r in enumerate(rows):
        p = tmp_path / f"hyps{i}.jsonl"
        p.write_text("".join(json.dumps(x) + "\n" for x in r))
        runs.append(read_hyps(p))
    avg = seed_mean_errors(runs)
    assert avg["pl"][0].tolist() == [2.0, 0.0] and avg["pl"][1].tolist() == [4.0, 2.0]
    p = tmp_path / "loop.jsonl"
    p.write_text(json.dumps({"id": "a", "language": "pl", "errors": 9, "length": 4}) + "\n")
    assert read_hyps(p, clipped=True)["a"][1] == 4
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5)) and mean_sd([5.0]) == (5.0, 0.0)
