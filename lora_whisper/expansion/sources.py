"""The new language's utterances from any source `open_source` reads, including a language
Whisper has no code for.

The readers refuse rows whose language is not a Whisper code (a good default: a typo in a
manifest should fail). A language added under a new code (`--language xx
--prompt-language yy`) is exactly such a row, so for it we run the format's reader without
that check and apply the remaining row checks (text present, audio file present) here.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from lora_whisper.data.readers import FORMATS, detect_format, open_source, parse_spec
from lora_whisper.data.utterance import BadRow, DataError, Utterance
from lora_whisper.errors import UserError


def _raw_code(lang) -> str | None:
    if lang is None or not str(lang).strip():
        return None
    return str(lang).strip().lower()


def _read_new_code(spec: str, code: str) -> list[Utterance]:
    fmt, path = parse_spec(spec)
    fmt = fmt or detect_format(path)
    if fmt == "jsonl" and path.is_dir():
        path = sorted(path.glob("*.jsonl"))[0]
    out, bad = [], []
    for row in FORMATS[fmt](path, None, None):
        if isinstance(row, BadRow):
            bad.append(str(row))
            continue
        raw = _raw_code(row.language)
        if raw not in (code, None):
            continue
        problems = []
        if not row.text or not row.text.strip():
            problems.append("empty text")
        if not Path(row.audio).is_file():
            problems.append(f"audio file not found: {row.audio}")
        if problems:
            bad.append(f"{row.origin or row.id}: {'; '.join(problems)}")
            continue
        out.append(replace(row, language=code))
    if bad:
        raise DataError(f"{len(bad)} bad row(s) in {spec}: {'; '.join(bad[:3])}")
    if not out:
        raise DataError(f"{spec}: no utterances for language {code!r}")
    return out


def read_language(spec: str, code: str | None, known: bool) -> list[Utterance]:
    """Utterances of `code` in `spec` (None: the source must hold exactly one language).

    `known`: whether `code` is a Whisper language (read through the normal checks).
    """
    if code is None:
        utts = open_source(spec)
        langs = Counter(u.language for u in utts)
        if len(langs) != 1:
            raise UserError(f"{spec} holds several languages ({', '.join(f'{k} {v}' for k, v in sorted(langs.items()))}); "
                            f"name the new one with --language")
        return utts
    if known:
        return open_source(spec, language=code)
    return _read_new_code(spec, code)


def relabel(utts: list[Utterance], prompt_language: str) -> list[Utterance]:
    """The training code prompts each row with its `language`: a new code is trained under
    the Whisper token it is prompted with."""
    return [u if u.language == prompt_language else replace(u, language=prompt_language) for u in utts]
