"""Transcript output formats: txt, json, srt, vtt."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads FORMATS at start-up: keep this module free of torch
    from lora_whisper.inference.transcriber import Transcription


def _ts(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _switches(t: "Transcription") -> bool:
    """Segments of more than one language (per-window routing): each cue then says its own."""
    return len({g.language for g in t.segments if getattr(g, "language", None)}) > 1


def _cues(t: "Transcription", per_word: bool) -> list[tuple[float, float, str, str | None]]:
    """(start, end, text, language) per segment, or per word (segments without words stay whole)."""
    cues = []
    for g in t.segments:
        lang = getattr(g, "language", None)
        if per_word and g.words:
            cues += [(w.start, w.end, w.word.strip(), lang) for w in g.words]
        else:
            cues.append((g.start, g.end, g.text, lang))
    return cues


def to_srt(t: "Transcription", per_word: bool = False) -> str:
    tag = _switches(t)
    blocks = [f"{i}\n{_ts(s, ',')} --> {_ts(e, ',')}\n{f'[{lang}] ' if tag and lang else ''}{x}\n"
              for i, (s, e, x, lang) in enumerate(_cues(t, per_word), 1)]
    return "\n".join(blocks)


def to_vtt(t: "Transcription", per_word: bool = False) -> str:
    tag = _switches(t)   # WebVTT's own language span

    def text(x, lang):
        return f"<lang {lang}>{x}</lang>" if tag and lang else x

    return "WEBVTT\n\n" + "\n".join(f"{_ts(s, '.')} --> {_ts(e, '.')}\n{text(x, lang)}\n"
                                     for s, e, x, lang in _cues(t, per_word))


def to_json(t: "Transcription") -> str:
    return json.dumps(t.to_dict(), ensure_ascii=False)


def render(t: "Transcription", fmt: str, per_word: bool = False) -> str:
    if fmt == "json":
        return to_json(t)
    if fmt == "srt":
        return to_srt(t, per_word)
    if fmt == "vtt":
        return to_vtt(t, per_word)
    return t.text


FORMATS = ("txt", "text", "json", "srt", "vtt")   # "text": the OpenAI API's name for txt
