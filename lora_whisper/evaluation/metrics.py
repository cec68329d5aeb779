"""WER (CER for languages written without spaces) per utterance, per language, macro-averaged.

Two figures per language:
- raw: total edits / total reference units (words or characters), the standard corpus WER;
  a hypothesis stuck in a repetition loop can push it far above 100%.
- clipped: each utterance's edits capped at its reference length before summing, so one
  runaway hypothesis costs at most 100% of its own utterance.
The macro average weights every language equally, as the paper's "average" column does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

import jiwer

from lora_whisper.evaluation.normalize import normalize
from lora_whisper.languages import metric_name, uses_cer


@dataclass(frozen=True)
class UtteranceScore:
    errors: int        # substitutions + deletions + insertions
    length: int        # reference words (or characters)
    ref: str           # normalised
    hyp: str           # normalised

    @property
    def rate(self) -> float:
        if self.length == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.length

    @property
    def clipped_errors(self) -> int:
        # An empty reference with a non-empty hypothesis still counts, as one full error.
        return min(self.errors, max(self.length, 1 if self.errors else 0))


def score_utterance(ref: str, hyp: str, language: str | None) -> UtteranceScore:
    r, h = normalize(ref, language), normalize(hyp, language)
    cer = language is not None and uses_cer(language)
    if cer:
        # Normalised CER text has no spaces; jiwer's character mode would count them.
        out = jiwer.process_characters(r, h) if r else None
        length = len(r)
    else:
        out = jiwer.process_words(r, h) if r else None
        length = len(r.split())
    if out is None:  # empty reference: every hypothesis unit is an insertion
        errors = len(h) if cer else len(h.split())
    else:
        errors = out.substitutions + out.deletions + out.insertions
    return UtteranceScore(errors, length, r, h)


@dataclass(frozen=True)
class LanguageScore:
    language: str
    metric: str          # "WER" or "CER"
    n: int               # utterances
    errors: int
    length: int
    clipped_errors: int

    @property
    def error(self) -> float:
        """Raw error rate in % (may exceed 100)."""
        return 100.0 * self.errors / self.length if self.length else 0.0

    @property
    def clipped(self) -> float:
        """Error rate in % with each utterance capped at 100%."""
        return 100.0 * self.clipped_errors / self.length if self.length else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["error"] = round(self.error, 4)
        d["clipped"] = round(self.clipped, 4)
        return d


def score_language(language: str, scores: Iterable[UtteranceScore]) -> LanguageScore:
    scores = list(scores)
    return LanguageScore(language, metric_name(language), len(scores), sum(s.errors for s in scores),
                         sum(s.length for s in scores), sum(s.clipped_errors for s in scores))


def score_corpus(refs: Sequence[str], hyps: Sequence[str],
                 languages: Sequence[str]) -> dict[str, LanguageScore]:
    """Per language (in first-seen order) from parallel lists."""
    if not len(refs) == len(hyps) == len(languages):
        raise ValueError("refs, hyps and languages must have the same length")
    by_lang: dict[str, list[UtteranceScore]] = {}
    for r, h, lang in zip(refs, hyps, languages):
        by_lang.setdefault(lang, []).append(score_utterance(r, h, lang))
    return {lang: score_language(lang, s) for lang, s in by_lang.items()}


def macro_average(scores: Mapping[str, LanguageScore], clipped: bool = False) -> float:
    if not scores:
        return float("nan")
    values = [s.clipped if clipped else s.error for s in scores.values()]
    return sum(values) / len(values)


def relative_gain(baseline: float, system: float) -> float:
    """% of the baseline's error removed: (baseline - system) / baseline * 100 (the paper's
    "relative gain"); negative when the system is worse."""
    if baseline == 0:
        return 0.0 if system == 0 else float("-inf")
    return 100.0 * (baseline - system) / baseline


def gains(baseline: Mapping[str, LanguageScore], system: Mapping[str, LanguageScore],
          clipped: bool = False) -> dict[str, float]:
    """Relative gain per language present in both, plus "macro" (gain of the macro averages)."""
    common = [lang for lang in system if lang in baseline]
    pick = (lambda s: s.clipped) if clipped else (lambda s: s.error)
    out = {lang: relative_gain(pick(baseline[lang]), pick(system[lang])) for lang in common}
    if common:
        out["macro"] = relative_gain(macro_average({k: baseline[k] for k in common}, clipped),
                                     macro_average({k: system[k] for k in common}, clipped))
    return out
