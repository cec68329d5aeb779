"""One access-log line per request, written when its response completes.

Pure ASGI (no BaseHTTPMiddleware): the line is written from the `send` of the response's
last body chunk, so a request that finishes while the server drains at SIGTERM is logged
before uvicorn cancels anything; a request that never answers (client gone, cancelled) is
logged when its handler ends.

    127.0.0.1:52144 "POST /v1/audio/transcriptions" 200 412ms audio=4.00s language=en expert=en
"""
from __future__ import annotations

import logging
import sys
import time

ACCESS_LOG = logging.getLogger("lora_whisper.access")


def _ensure_handler() -> None:
    # uvicorn configures its own loggers only; without a handler INFO lines would be lost.
    if ACCESS_LOG.level == logging.NOTSET:
        ACCESS_LOG.setLevel(logging.INFO)
    if not any(getattr(h, "_lora_whisper", False) for h in ACCESS_LOG.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        handler._lora_whisper = True
        ACCESS_LOG.addHandler(handler)
        ACCESS_LOG.propagate = False


class AccessLog:
    def __init__(self, app):
        self.app = app
        _ensure_handler()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        state = {"status": None, "logged": False}
        scope.setdefault("state", {})

        def write(status) -> None:
            if state["logged"]:
                return
            state["logged"] = True
            client = scope.get("client")
            where = f"{client[0]}:{client[1]}" if client else "-"
            extra = scope["state"]
            fields = [f"audio={extra['audio_seconds']:.2f}s"] if "audio_seconds" in extra else []
            fields += [f"{k}={extra[k]}" for k in ("language", "expert") if extra.get(k) is not None]
            ACCESS_LOG.info("%s \"%s %s\" %s %.0fms%s", where, scope.get("method"), scope.get("path"),
                            status if status is not None else "-", 1000 * (time.perf_counter() - t0),
                            (" " + " ".join(fields)) if fields else "")

        async def logged_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            try:
                await send(message)
            finally:
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    write(state["status"])

        try:
            await self.app(scope, receive, logged_send)
        finally:
            write(state["status"] if state["status"] is not None else 499)
