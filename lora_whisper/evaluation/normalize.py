"""Whisper's BasicTextNormalizer, the normaliser of the Whisper paper's multilingual results.

Lower-case, drop bracketed/parenthesised spans, replace punctuation and symbols with spaces,
collapse whitespace; diacritics are kept (they are spelling in pl, pt, da, cy...). Languages
scored by characters also lose their spaces, so "你好 世界" and "你好世界" score the same.
Chinese is also converted to simplified characters (OpenCC's t2s, the maintained converter):
Whisper often writes Mandarin in traditional script while references (and our corpus) are
simplified, and CER would otherwise count script, not recognition.
"""
from __future__ import annotations

from functools import lru_cache

import opencc
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from lora_whisper.languages import uses_cer


@lru_cache(maxsize=1)
def _basic():
    return BasicTextNormalizer()


@lru_cache(maxsize=1)
def _to_simplified():
    return opencc.OpenCC("t2s")


# Languages written in Chinese characters whose script is made one before scoring; Cantonese
# (yue) is conventionally traditional, so it is left as written.
SIMPLIFIED = frozenset({"zh"})


def normalize(text: str, language: str | None = None) -> str:
    """The form references and hypotheses are compared in."""
    s = _basic()(text or "").strip()
    if language in SIMPLIFIED and s:
        s = _to_simplified().convert(s)
    if language is not None and uses_cer(language):
        s = "".join(s.split())
    return s
