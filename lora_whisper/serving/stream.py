"""`stream=true`: a transcription's segments as server-sent events while it is decoded.

OpenAI's event shape for streamed transcriptions: one `transcript.text.delta` per segment
(its `delta` is the text to append, so the deltas concatenate to the final text), then one
`transcript.text.done` with the whole text, then `data: [DONE]` as vLLM (and OpenAI's chat
streams) end. Each delta also carries the `segment` (id, start, end, text, and words when
asked for). The decoding runs on the micro-batcher's worker thread, which hands segments to
the request's event loop as they come (`SegmentQueue`).
"""
from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

DONE = "data: [DONE]\n\n"


def sse(event: dict) -> str:
    return "data: " + json.dumps(event, ensure_ascii=False) + "\n\n"


def segment_json(i: int, g, language: str | None = None) -> dict:
    """OpenAI's segment, with the language it was decoded in (`language`: the file's, for a
    segment that has none of its own)."""
    d = {"id": i, "seek": int(round(g.start * 100)), "start": g.start, "end": g.end, "text": g.text}
    if getattr(g, "language", None) or language:
        d["language"] = getattr(g, "language", None) or language
    if getattr(g, "words", None) is not None:
        d["words"] = [word_json(w) for w in g.words]
    return d


def word_json(w) -> dict:
    return {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}


class SegmentQueue:
    """Segments from the worker thread -> the event loop, in order, then the result."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()

    def _put(self, item) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def on_segment(self, segment) -> None:          # called on the worker thread
        self._put(("segment", segment))

    def attach(self, future) -> None:
        """The worker's future: its result (or error) follows the segments it pushed."""
        future.add_done_callback(lambda f: self._put(("done", f)))

    async def events(self) -> AsyncIterator[str]:
        n = 0
        while True:
            kind, item = await self.queue.get()
            if kind == "segment":
                yield sse({"type": "transcript.text.delta", "delta": (" " if n else "") + item.text,
                           "segment": segment_json(n, item)})
                n += 1
                continue
            try:
                t = item.result()
            except Exception as exc:  # noqa: BLE001  (the stream has begun: report in-band)
                yield sse({"type": "error", "error": {"message": f"transcription failed: {type(exc).__name__}: {exc}",
                                                      "type": "server_error"}})
            else:
                yield sse({"type": "transcript.text.done", "text": t.text, "language": t.language,
                           "language_probability": t.language_probability, "duration": round(t.duration, 3), "expert": t.expert})
            yield DONE
            return
