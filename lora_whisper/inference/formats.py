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


def to_srt(t: "Transcription") -> str:
    tag = _switches(t)
    blocks = [f"{i}\n{_ts(g.start, ',')} --> {_ts(g.end, ',')}\n{f'[{g.language}] ' if tag and g.language else ''}{g.text}\n"
              for i, g in enumerate(t.segments, 1)]
    return "\n".join(blocks)


def to_vtt(t: "Transcription") -> str:
    tag = _switches(t)   # WebVTT's own language span

    def text(g):
        return f"<lang {g.language}>{g.text}</lang>" if tag and g.language else g.text

    return "WEBVTT\n\n" + "\n".join(f"{_ts(g.start, '.')} --> {_ts(g.end, '.')}\n{text(g)}\n" for g in t.segments)


def to_json(t: "Transcription") -> str:
    return json.dumps(t.to_dict(), ensure_ascii=False)


def render(t: "Transcription", fmt: str) -> str:
    if fmt == "json":
        return to_json(t)
    if fmt == "srt":
        return to_srt(t)
    if fmt == "vtt":
        return to_vtt(t)
    return t.text


FORMATS = ("txt", "text", "json", "srt", "vtt")   # "text": the OpenAI API's name for txt
