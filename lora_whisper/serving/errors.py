"""OpenAI-style error bodies, and the upload size limit enforced before a form is parsed."""
from __future__ import annotations

from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind


def error_body(message: str, kind: str, param=None, code=None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class UploadTooLarge(HTTPException):
    param, code = "file", "file_too_large"


class UploadLimit:
    """Refuse an upload over the limit before it is parsed: at once from its Content-Length,
    or, for a chunked upload, as soon as the bytes received pass the limit."""

    def __init__(self, app, path: str, limit: int, max_upload_mb: float):
        self.app, self.path, self.limit, self.max_upload_mb = app, path, limit, max_upload_mb

    def _error(self, size: int | None = None) -> UploadTooLarge:
        what = "request body" if size is None else f"request body of {size / 2**20:.1f} MB"
        return UploadTooLarge(413, f"{what} is too large: the limit is {self.max_upload_mb:g} MB")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit():
            if int(length) > self.limit:
                exc = self._error(int(length))
                body = error_body(exc.detail, "invalid_request_error", exc.param, exc.code)
                await JSONResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)
                return
            return await self.app(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self._error()  # FastAPI re-raises HTTPExceptions from body parsing
            return message

        await self.app(scope, counted, send)


def shown(value, limit: int = 64) -> str:
    """A client's value quoted in a message: cut short, never a Python repr."""
    text = " ".join(str(value).split())
    return f"'{text[:limit]}{'...' if len(text) > limit else ''}'"
