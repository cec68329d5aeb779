"""The HTTP API: OpenAI-compatible transcription, the run's models, health, and a web page.

Every error, a malformed form and an unknown route included, uses OpenAI's body
(`{"error": {"message", "type", "param", "code"}}`) so the official clients raise their usual
exceptions with our message. OpenAI's `prompt` field is accepted and not used (the decoder
takes no text prompt yet). Each request gets one access-log line (logger
`lora_whisper.access`), written as its response completes. Uploads are limited in bytes and
in seconds of audio; a client that disconnects has its decoding stopped. Decoding is
deterministic: identical requests get identical transcripts (the temperature fallback samples
with a per-row seeded generator; `temperature` > 0 starts from sampling, equally seeded).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import HTTPException, RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from lora_whisper.adapters.run import modified
from lora_whisper.audio import AudioError, AudioTooLong, decode_bytes
from lora_whisper.inference.formats import render
from lora_whisper.serving.access_log import AccessLog
from lora_whisper.serving.batcher import Cancelled, Job, JobFailed, MicroBatcher
from lora_whisper.serving.cards import model_card, verbose_json
from lora_whisper.serving.routing_fields import expert_models, request_routing
from lora_whisper.serving.errors import APIError, UploadLimit, error_body
from lora_whisper.serving.errors import shown as _shown
from lora_whisper.serving.stream import SegmentQueue

STATIC = Path(__file__).resolve().parent / "static"
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
MODEL_ALIASES = ("whisper-1",)  # what clients written for OpenAI send by default
FORM_SLACK = 64 * 1024          # multipart boundaries and the small text fields
DISCONNECT_POLL_S = 0.25        # how often a waiting request checks that its client is still there
log = logging.getLogger("lora_whisper.serving")


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """FastAPI's list of form errors -> one sentence and the field it is about."""
    first = exc.errors()[0] if exc.errors() else {}
    field = str(first.get("loc", ("", ""))[-1]) or None
    kind = first.get("type", "")
    if kind == "missing":
        what = "an audio file upload" if field == "file" else "a form field"
        return f"missing required field '{field}' ({what}; send multipart/form-data)", field
    expected = {"float_parsing": "a number", "int_parsing": "a whole number"}.get(kind)
    if expected:
        return f"field '{field}' must be {expected}, got {_shown(first.get('input'))}", field
    return f"field '{field}' is not valid ({first.get('msg', 'invalid')})", field


def create_app(transcriber, *, model_id: str = "lora-whisper", api_key: str | None = None,
               max_upload_mb: float = 25.0, max_batch: int = 8, batch_wait_ms: float = 20.0,
               batcher: MicroBatcher | None = None, max_audio_seconds: float | None = 7200.0,
               vad: bool = False) -> FastAPI:
    """`max_audio_seconds`: the longest audio a request may carry (None: no limit beside the
    byte limit; 10 MB of FLAC can hold hours of silence). `vad`: cut uploads at speech pauses
    and decode their chunks as batches."""
    batcher = batcher or MicroBatcher(transcriber, max_batch=max_batch, wait_ms=batch_wait_ms, vad=vad)
    max_bytes = int(max_upload_mb * 1024 * 1024)
    created = int(time.time())
    if transcriber.run_info is not None:
        created = int(modified(transcriber.run_info.path))
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
    app.add_middleware(AccessLog)   # outermost: sees every status, the 413s above included
    app.state.batcher = batcher
    app.state.transcriber = transcriber

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(error_body(exc.message, exc.kind, exc.param, exc.code), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)   # ours, and the router's 404/405
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        body = error_body(str(exc.detail), kind, getattr(exc, "param", None), getattr(exc, "code", None))
        return JSONResponse(body, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)   # a malformed form: OpenAI's shape, not FastAPI's 422
    async def _invalid_form(request: Request, exc: RequestValidationError):
        message, field = _validation_message(exc)
        return JSONResponse(error_body(message, "invalid_request_error", field, "invalid_request"), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.error("unexpected error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse(error_body("internal server error (logged on the server)", "server_error"),
                            status_code=500)

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
                "max_audio_seconds": max_audio_seconds,
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
            raise APIError(404, f"model {_shown(name)} not found; this server has '{model_id}'", "model",
                           "model_not_found")
        return card

    @app.post("/v1/audio/transcriptions", dependencies=[Depends(require_key)])
    async def transcriptions(request: Request, file: UploadFile = File(...), model: str = Form(...),
                             language: str | None = Form(None), response_format: str = Form("json"),
                             temperature: float = Form(0.0), prompt: str | None = Form(None),
                             stream: bool = Form(False),
                             timestamp_granularities: list[str] | None = Form(None, alias="timestamp_granularities[]"),
                             languages: str | None = Form(None), routing: str | None = Form(None)):
        if model not in (model_id, *MODEL_ALIASES, *experts):
            raise APIError(404, f"model {_shown(model)} not found; this server has '{model_id}' and its experts "
                                f"{', '.join(experts) or '(none)'}", "model", "model_not_found")
        if response_format not in RESPONSE_FORMATS:
            raise APIError(400, f"response_format {_shown(response_format)} is not one of: {', '.join(RESPONSE_FORMATS)}",
                           "response_format")
        granularities = set(timestamp_granularities or [])
        if granularities - {"word", "segment"}:
            raise APIError(400, f"timestamp_granularities {_shown(sorted(granularities))}: choose from word, segment",
                           "timestamp_granularities")
        words = "word" in granularities
        if not 0.0 <= temperature <= 1.0:   # NaN fails this too
            raise APIError(400, f"temperature must be between 0 and 1, got {temperature}", "temperature")
        try:
            code = transcriber.check_language(language)
        except ValueError as exc:  # UnknownLanguageError: its message lists the valid codes
            raise APIError(400, str(exc), "language", "unsupported_language") from None
        code, candidates = request_routing(transcriber, model, experts, code, languages, routing)
        data = await file.read()
        if len(data) > max_bytes:
            raise APIError(413, f"file is {len(data) / 2**20:.1f} MB; the limit is {max_upload_mb:g} MB",
                           "file", "file_too_large")
        name = " ".join((file.filename or "upload").split())[:128] or "upload"
        try:
            audio = await run_in_threadpool(decode_bytes, data, name, max_seconds=max_audio_seconds)
        except AudioTooLong as exc:
            raise APIError(413, str(exc), "file", "audio_too_long") from None
        except AudioError as exc:
            raise APIError(400, str(exc), "file", "invalid_audio") from None
        request.state.audio_seconds = len(audio) / 16000
        if stream:   # segments as server-sent events while the file is decoded (stream.py)
            q = SegmentQueue(asyncio.get_running_loop())
            job = Job(audio, code, float(temperature), words=words, on_segment=q.on_segment,
                      candidates=candidates, routing=routing)
            try:
                batcher.submit_job(job)
            except Cancelled as exc:
                raise APIError(503, str(exc), None, "shutting_down", "server_error") from None
            q.attach(job.future)
            return StreamingResponse(q.events(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        t = await _decode(request, Job(audio, code, float(temperature), words=words, candidates=candidates,
                                            routing=routing))
        request.state.language, request.state.expert = t.language, t.expert
        if response_format == "json":
            return {"text": t.text}
        if response_format == "verbose_json":
            return verbose_json(t, model_id, t.mixture or transcriber.mixture_for(t.language),
                                transcriber.bank is not None)
        if response_format == "text":
            return PlainTextResponse(t.text)
        return PlainTextResponse(render(t, response_format),
                                 media_type="text/vtt" if response_format == "vtt" else "text/plain")

    async def _decode(request: Request, job: Job):
        """Wait for the batcher; if the client goes away meanwhile, its work is dropped."""
        try:
            batcher.submit_job(job)
        except Cancelled as exc:
            raise APIError(503, str(exc), None, "shutting_down", "server_error") from None
        waiter = asyncio.wrap_future(job.future)
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=DISCONNECT_POLL_S)
                if done:
                    break
                if await request.is_disconnected():
                    job.abandon()
                    waiter.cancel()   # nobody will read its outcome
                    raise APIError(499, "client closed the request", None, "client_closed")
        except asyncio.CancelledError:
            waiter.cancel()
            # uvicorn cancels what is still running when its drain time (--drain-seconds) is up:
            # stop the work, and answer rather than die with a traceback in the log.
            job.abandon()
            raise APIError(503, "the server is shutting down; retry later", None, "shutting_down",
                           "server_error") from None
        try:
            return waiter.result()
        except (Cancelled, concurrent.futures.CancelledError):
            raise APIError(503, "transcription cancelled (the server is shutting down)", None, "cancelled",
                           "server_error") from None
        except JobFailed as exc:   # this row failed; its batch's other requests did not
            log.error("transcription of one request failed: %s", exc)
            raise APIError(500, "transcription of this file failed (logged on the server); the server "
                                "goes on serving", None, "transcription_failed", "server_error") from None
        except Exception as exc:  # noqa: BLE001  (reported; the worker keeps serving)
            log.error("transcription failed: %s: %s", type(exc).__name__, exc)
            raise APIError(500, "transcription failed (logged on the server)", None, "transcription_failed",
                           "server_error") from None

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
