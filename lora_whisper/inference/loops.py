"""Repetition loops: which decoded rows are stuck in one, per row, from the text alone.

At real length (no 30 s padding, no timestamps) whisper-base often does not stop after the
last word: on real recorded speech it writes the sentence again and again ("Turn off the
office light. Turn off the office light. ...") until the token budget ends it, on clips that
faster-whisper and 30 s padding decode once. Whisper's own rule (gzip compression ratio
> 2.4) misses a sentence said twice or three times, whose ratio stays under 2.4, so a row is
also a loop when its words (characters for zh/ja...) contain a tandem repeat: a phrase
immediately said again, long enough or often enough that speech rarely does it.

A tandem repeat of period p, repeated r times, shows as a run of at least (r-1)*p positions j
with unit[j] == unit[j-p]; one pass per period finds the longest run (O(n^2) on at most a
few hundred units). Written here because no maintained library offers it for token lists.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from lora_whisper.languages import uses_cer


@dataclass(frozen=True)
class LoopRule:
    """(min period, min repeats) pairs: a tandem repeat meeting any one of them is a loop.

    Words: a phrase of >= 3 words said twice in a row, >= 2 words three times, one word five
    times. Characters (zh, ja, ...): >= 4 characters twice, >= 2 three times, one six times
    (reduplication such as 谢谢 or 一个一个 is ordinary there).
    """
    words: tuple[tuple[int, int], ...] = ((3, 2), (2, 3), (1, 5))
    chars: tuple[tuple[int, int], ...] = ((4, 2), (2, 3), (1, 6))
    compression_ratio: float | None = 2.4


DEFAULT_RULE = LoopRule()

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def units(text: str, language: str | None) -> list[str]:
    """Lower-cased words without punctuation, or characters for languages scored by CER."""
    s = _PUNCT.sub(" ", text.lower())
    if language is not None and uses_cer(language):
        return [c for c in s if not c.isspace()]
    return s.split()


def max_repeats(seq: list, period: int) -> int:
    """How many times in a row (>= 1) some span of `period` units occurs back to back."""
    best = run = 0
    for j in range(period, len(seq)):
        run = run + 1 if seq[j] == seq[j - period] else 0
        best = max(best, run)
    return 1 + best // period


def tandem_repeat(seq: list, rule: tuple[tuple[int, int], ...]) -> tuple[int, int] | None:
    """The first (period, repeats) that meets `rule`, or None."""
    n = len(seq)
    for period in range(1, n // 2 + 1):
        need = min((r for p, r in rule if period >= p), default=None)
        if need is None or period * need > n:
            continue
        r = max_repeats(seq, period)
        if r >= need:
            return period, r
    return None


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def is_loop(text: str, language: str | None, rule: LoopRule = DEFAULT_RULE) -> bool:
    if not text:
        return False
    if rule.compression_ratio is not None and compression_ratio(text) > rule.compression_ratio:
        return True
    cer = language is not None and uses_cer(language)
    return tandem_repeat(units(text, language), rule.chars if cer else rule.words) is not None


_UNIT = {False: re.compile(r"[^\W_]+", re.UNICODE), True: re.compile(r"[^\W_]", re.UNICODE)}


def collapse(text: str, language: str | None, rule: LoopRule = DEFAULT_RULE) -> str:
    """The text with each back-to-back repeat that `rule` calls a loop said once: the last
    resort for a row that loops however it is decoded ("red alert red alert red alert" ->
    "red alert"; "ひぃぃぃぃぃ…" -> "ひぃ"). What was said before and after the loop stays.
    Repeats are found on the units `is_loop` compares; whole units of the text as written
    (punctuation and spacing included) are cut."""
    cer = language is not None and uses_cer(language)
    pairs = rule.chars if cer else rule.words
    while True:
        spans = [(m.start(), m.group().lower()) for m in _UNIT[cer].finditer(text)]
        norm = [u for _, u in spans]
        cut = None
        for period in range(1, len(norm) // 2 + 1):
            need = min((r for p, r in pairs if period >= p), default=None)
            if need is None:
                continue
            run = 0
            for j in range(period, len(norm)):
                run = run + 1 if norm[j] == norm[j - period] else 0
                end = j + 1 >= len(norm) or norm[j + 1] != norm[j + 1 - period]
                if run and end and 1 + run // period >= need:
                    start = j + 1 - run                      # the repeats begin here
                    stop = start + (run // period) * period  # whole copies only
                    cut = (spans[start][0], spans[stop][0] if stop < len(spans) else len(text))
                    break
            if cut:
                break
        if cut is None:
            return text
        text = (text[:cut[0]] + text[cut[1]:]).rstrip() if cut[1] == len(text) else text[:cut[0]] + text[cut[1]:]


def guard(results: list, languages: list[str | None], stages: list, rule: LoopRule = DEFAULT_RULE) -> int:
    """Re-decode, in place, the rows of `results` (objects with `.text`) that loop.

    `stages`: callables taking row indices and returning new results for those rows, tried in
    order on the rows still looping (e.g. 30 s padding, then 30 s padding with timestamps).
    A row takes the new result when it does not loop, or loops on fewer units than before.
    A row that loops after every stage has its repeats said once (`collapse`): whisper-base at
    temperature 0 can loop on a clip however it is padded (a Japanese clip ended in 200 "ぃ").
    Rows that do not loop are never touched. Returns how many rows were re-decoded."""
    flagged = [k for k, r in enumerate(results) if is_loop(r.text, languages[k], rule)]
    redone = len(flagged)
    for stage in stages:
        if not flagged:
            break
        still = []
        for k, new in zip(flagged, stage(flagged)):
            looping = is_loop(new.text, languages[k], rule)
            if not looping or len(units(new.text, languages[k])) < len(units(results[k].text, languages[k])):
                results[k] = new
            if looping:
                still.append(k)
        flagged = still
    for k in flagged:
        results[k].text = collapse(results[k].text, languages[k], rule)
    return redone
