"""What every reader shares: language codes from arguments, columns and folder names; the
per-row checks; the split names corpora disagree on."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from lora_whisper.data.utterance import BadRow, Utterance
from lora_whisper.languages import LANGUAGES, UnknownLanguageError, normalize_code

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".mp4")

# Codes corpora use for languages Whisper knows under another code: FLEURS' cmn/nb/fil,
# ISO 639-3 jav vs Whisper's historical "jw", old ISO codes.
_ALIASES = {"cmn": "zh", "nb": "no", "fil": "tl", "jv": "jw", "iw": "he", "in": "id",
            "ji": "yi", "zh-hans": "zh", "zh-hant": "zh"}

SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev"}


def resolve_language(raw: str | None) -> str | None:
    """A Whisper code for 'pl', 'PL', 'polish', 'pl-PL', 'pl_pl', 'cmn_hans_cn'; else None."""
    if raw is None or not str(raw).strip():
        return None
    code = normalize_code(str(raw))
    if code in LANGUAGES:
        return code
    code = code.replace("_", "-")
    if code in _ALIASES:
        return _ALIASES[code]
    head = code.split("-")[0]
    head = _ALIASES.get(head, normalize_code(head))
    return head if head in LANGUAGES else None


def language_argument(raw: str | None) -> str | None:
    """A --language value: unknown is the user's mistake, so it fails at once."""
    if raw is None:
        return None
    code = resolve_language(raw)
    if code is None:
        raise UnknownLanguageError(str(raw), list(LANGUAGES))
    return code


def language_from_path(path: Path) -> str | None:
    """Guess from folder names such as 'pl', 'mls_polish', 'pl_pl', 'cv-corpus-17.0/pl'."""
    for part in (path.name, re.sub(r"^(mls|cv|fleurs|cv-corpus)[_-]", "", path.name),
                 re.sub(r"[_-](opus|flac|wav)$", "", re.sub(r"^mls_", "", path.name))):
        code = resolve_language(part)
        if code is not None:
            return code
    return None


def split_name(split: str | None) -> str | None:
    return None if split is None else SPLIT_ALIASES.get(split.lower(), split.lower())


def check(utt: Utterance, check_files: bool = True) -> Utterance | BadRow:
    """The row-level problems a training run would trip over later, as one bad row.

    The language is normalised here ('Polish' -> 'pl'), so readers may pass what they found.
    """
    where = utt.origin or utt.id
    problems = []
    code = resolve_language(utt.language)
    if utt.language is None or not str(utt.language).strip():
        problems.append("no language (pass --language)")
    elif code is None:
        problems.append(f"unknown language {utt.language!r}")
    if not utt.text or not utt.text.strip():
        problems.append("empty text")
    if check_files:
        p = Path(utt.audio)
        if not p.is_file():
            problems.append(f"audio file not found: {utt.audio}")
        elif p.stat().st_size == 0:
            problems.append(f"audio file is empty (0 bytes): {utt.audio}")
    if problems:
        return BadRow(where, "; ".join(problems), utt.id)
    if code != utt.language:
        utt = replace(utt, language=code)
    return utt


def select(utt: Utterance, language: str | None, split: str | None) -> Utterance | None:
    """For sources whose rows carry their own language and split: `language`/`split` keep
    the matching rows and fill rows that have none; None means the row is not wanted."""
    changes = {}
    if language is not None:
        if utt.language is None or not str(utt.language).strip():
            changes["language"] = language
        elif resolve_language(utt.language) not in (language, None):
            return None
        # an unknown code is kept, so the check still reports it
    if split is not None:
        if utt.split is None or not str(utt.split).strip():
            changes["split"] = split
        elif split_name(utt.split) != split:
            return None
    return replace(utt, **changes) if changes else utt
