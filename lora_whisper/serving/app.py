"""The HTTP API: OpenAI-compatible transcription, the run's models, health, and a web page.

Errors use OpenAI's body (`{"error": {"message", "type", "param", "code"}}`) so the official
clients raise their usual exceptions with our message; a malformed form keeps FastAPI's 422.
OpenAI's `prompt` field is accepted and not used (the decoder takes no text prompt yet).
"""
from __future__ import annotations

import os
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import HTTPException
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from lora_whisper.serving.batcher import MicroBatcher
from lora_whisper.serving.cards import model_card, verbose_json
from lora_whisper.serving.routing_fields import expert_models, request_routing
from lora_whisper.serving.errors import APIError, UploadLimit, error_body

STATIC = Path(__file__).resolve().parent / "static"
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
MODEL_ALIASES = ("whisper-1",)  # what clients written for OpenAI send by default
FORM_SLACK = 64 * 1024          # multipart boundaries and the small text fields


def create_app(transcriber, *, model_id: str = "lora-whisper", api_key: str | None = None,
               max_upload_mb: float = 25.0, max_batch: int = 8, batch_wait_ms: float = 20.0,
               batcher: MicroBatcher | None = None) -> FastAPI:
    batcher = batcher or MicroBatcher(transcriber, max_batch=max_batch, wait_ms=batch_wait_ms)
    max_bytes = int(max_upload_mb * 1024 * 1024)
    created = int(time.time())
    if transcriber.run_info is not None:
        created = int(os.path.getmtime(transcriber.run_info.path / "lora_whisper.json"))
    card = model_card(transcriber, model_id, created)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(title="lora-whisper", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.add_middleware(UploadLimit, path="/v1/audio/transcriptions", limit=max_bytes + FORM_SLACK,
                       max_upload_mb=max_upload_mb)
    app.state.batcher = batcher
    app.state.transcriber = transcriber

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(error_body(exc.message, exc.kind, exc.param, exc.code), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        body = error_body(str(exc.detail), kind, getattr(exc, "param", None), getattr(exc, "code", None))
        return JSONResponse(body, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    def require_key(request: Request) -> None:
        if api_key is None:
            return
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise HTTPException(401, "missing or invalid API key (send 'Authorization: Bearer <key>')",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.get("/health")
    def health():
        return {"status": "ok", "model": model_id, "languages": card["languages"],
                "auth": api_key is not None, "max_upload_mb": max_upload_mb,
                "max_batch": batcher.max_batch, "pending": batcher.pending,
                "requests": batcher.requests, "batches": len(batcher.batches)}

    experts = expert_models(transcriber, model_id, created)   # "base-pl": the run with pl's expert

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    def list_models():
        return {"object": "list", "data": [card, *experts.values()]}

    @app.get("/v1/models/{name}", dependencies=[Depends(require_key)])
    def get_model(name: str):
        if name in experts:
            return experts[name]
        if name not in (model_id, *MODEL_ALIASES):
            raise APIError(404, f"model {name!r} not found; this server has {model_id!r}", "model", "model_not_found")
        return card

    @app.post("/v1/audio/transcriptions", dependencies=[Depends(require_key)])
    async def transcriptions(file: UploadFile = File(...), model: str = Form(...),
                             language: str | None = Form(None), response_format: str = Form("json"),
                             temperature: float = Form(0.0), prompt: str | None = Form(None),
                             languages: str | None = Form(None), routing: str | None = Form(None)):
        if model not in (model_id, *MODEL_ALIASES, *experts):
            raise APIError(404, f"model {model!r} not found; this server has {model_id!r} and its experts "
                                f"{', '.join(experts) or '(none)'}", "model", "model_not_found")
        if response_format not in RESPONSE_FORMATS:
            raise APIError(400, f"response_format {response_format!r} is not one of: {', '.join(RESPONSE_FORMATS)}",
                           "response_format")
        if not 0.0 <= temperature <= 1.0:
            raise APIError(400, f"temperature must be between 0 and 1, got {temperature}", "temperature")
        try:
            code = transcriber._check_language(language)
        except ValueError as exc:  # UnknownLanguageError: its message lists the valid codes
            raise APIError(400, str(exc), "language", "unsupported_language") from None
        code, candidates = request_routing(transcriber, model, experts, code, languages, routing)
        data = await file.read()
        if len(data) > max_bytes:
            raise APIError(413, f"file is {len(data) / 2**20:.1f} MB; the limit is {max_upload_mb:g} MB",
                           "file", "file_too_large")
        from lora_whisper.audio import AudioError, decode_bytes

        try:
            audio = await run_in_threadpool(decode_bytes, data, file.filename or "upload")
        except AudioError as exc:
            raise APIError(400, str(exc), "file", "invalid_audio") from None
        try:
            t = await batcher.transcribe(audio, code, temperature, candidates, routing)
        except Exception as exc:  # noqa: BLE001  (reported; the worker keeps serving)
            raise APIError(500, f"transcription failed: {type(exc).__name__}: {exc}", None, None,
                           "server_error") from None
        if response_format == "json":
            return {"text": t.text}
        if response_format == "verbose_json":
            return verbose_json(t, model_id, t.mixture or transcriber.mixture_for(t.language))
        if response_format == "text":
            return PlainTextResponse(t.text)
        from lora_whisper.inference.formats import render

        return PlainTextResponse(render(t, response_format),
                                 media_type="text/vtt" if response_format == "vtt" else "text/plain")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
