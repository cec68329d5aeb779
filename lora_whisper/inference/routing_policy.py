"""What a row is decoded with once its language distribution is known: hard, soft or N-best.

- `hard`: the most likely language's expert, prompted with that language (the paper's rule).
- When the language ID is unsure (top probability under `threshold`):
  - `soft`: one row whose experts are mixed by the renormalised probabilities of the top-k
    languages (a weighted row of the bank; a language without an expert contributes the bare
    backbone, i.e. nothing), prompted with the top language;
  - `nbest`: the row is decoded once per top-k language, each copy routed to and prompted with
    its language, all copies in the same batch as the other rows; the hypothesis with the best
    length-normalised log-probability wins.
A sure row (or a row whose language was given) is decoded hard in every mode, so the extra
cost is paid only by the unsure rows.

Long audio (`switch_probability`): each window gets its own language ID, but a window only
moves away from the previous window's language when its top language is at least this likely,
so one ambiguous window (a cough, a name, a pause) does not flip the language.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from lora_whisper.fields import setting

ROUTING_MODES = ("hard", "soft", "nbest")
LID_METHODS = ("backbone", "experts")   # language_id.py: the bare backbone, or each candidate's expert


@dataclass(frozen=True)
class RoutingPolicy:
    # None: nbest with a run's experts, hard without (the Transcriber resolves it). Chosen by
    # benchmarks/routing_accuracy.py: on 80 clips of pt/es/it/cy, nbest (top 2 under 0.9) cut
    # the error that hard routing adds over the oracle by 63% at 1.20x hard's time.
    mode: str | None = setting(None, "when language ID is unsure: soft mixes the top-k languages' experts "
                               "by their probabilities, nbest decodes once per top-k language and keeps the "
                               "likelier hypothesis, hard takes the top language's expert (default: nbest "
                               "with a run's experts, hard without; chosen by benchmarks/routing_accuracy.py)",
                               flag="--routing", choices=ROUTING_MODES)
    # Top probability under which a row counts as unsure (soft/nbest apply); configurable.
    threshold: float = setting(0.9, "top language probability under which soft/nbest apply",
                               flag="--routing-threshold")
    top_k: int = setting(2, "languages soft/nbest consider", minimum=1)
    lid: str = setting("backbone", "language ID by the bare backbone, or each candidate scored with its own "
                       "expert (one encoder pass per candidate)", choices=LID_METHODS)
    per_window: bool = setting(True, "long audio: a language ID per 30 s window (--no-per-window: one per "
                               "file, from its first 30 s)")
    switch_probability: float = setting(0.7, "long audio: a window leaves the previous window's language only "
                                        "when its top language is at least this likely")
    # Off by default: on the benchmark's code-switched files it labelled fewer segments right
    # (72% vs 81%) at 2.2x the time, segment-length language IDs being too unreliable to cut on.
    cut_on_switch: bool = setting(False, "long audio: also end a window where its segments' language changes "
                                  "(window_language.py; measured worse on synthetic speech, see "
                                  "benchmarks/README.md)")

    def __post_init__(self):
        if self.mode is not None and self.mode not in ROUTING_MODES:
            raise ValueError(f"routing {self.mode!r}: choose one of {', '.join(ROUTING_MODES)}")
        if self.lid not in LID_METHODS:
            raise ValueError(f"language ID method {self.lid!r}: choose one of {', '.join(LID_METHODS)}")
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.switch_probability <= 1.0:
            raise ValueError("routing threshold and switch probability must lie in [0, 1]")
        if self.top_k < 1:
            raise ValueError("routing top_k must be at least 1")


@dataclass(frozen=True)
class Route:
    """One decoder row for an input: the language it is prompted with, and its experts
    (a name, {expert: weight}, or None for the bare backbone)."""
    language: str | None
    spec: object
    kind: str = "hard"                # hard | soft | nbest: how this row was chosen


def routes_for(language: str | None, probs: Mapping[str, float] | None, policy: RoutingPolicy,
               mixture_for: Callable[[str | None], dict | None]) -> list[Route]:
    """The decoder rows for one input whose (chosen) language is `language` and whose language
    ID gave `probs` (None when the language was given)."""

    def spec(lang):
        mix = mixture_for(lang)
        if mix is not None and len(mix) == 1 and next(iter(mix.values())) == 1.0:
            return next(iter(mix))   # a plain name keeps the bank on its single-expert fast path
        return mix

    hard = [Route(language, spec(language))]
    if probs is None or policy.mode in (None, "hard") or len(probs) < 2:
        return hard
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    if language is not None and ranked[0][0] != language:   # a sticky window: its language first
        ranked = [(language, probs.get(language, 0.0))] + [kv for kv in ranked if kv[0] != language]
    if ranked[0][1] >= policy.threshold:
        return hard
    top = ranked[:policy.top_k]
    if len(top) < 2:
        return hard
    if policy.mode == "nbest":
        return [Route(lang, spec(lang), "nbest") for lang, _ in top]
    total = sum(p for _, p in top) or 1.0
    mix: dict[str, float] = {}
    for lang, p in top:
        for name, w in (mixture_for(lang) or {}).items():
            mix[name] = mix.get(name, 0.0) + w * p / total
    return [Route(language, mix or None, "soft")]


def sticky(previous: str | None, probs: Mapping[str, float], switch_probability: float) -> str:
    """A window's language: its top language, unless that differs from the previous window's
    and is less likely than `switch_probability`."""
    top, p = max(probs.items(), key=lambda kv: kv[1])
    if previous is None or top == previous or p >= switch_probability or previous not in probs:
        return top
    return previous
