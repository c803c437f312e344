"""Every error in Retell's shape: `{"status": "error", "message": ...}` with the right status.

Validation errors are 400 and name the field. Server errors carry `x-should-retry: false`, so
the SDKs never retry a create that may have gone through.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voxline.errors import VoxlineError

log = logging.getLogger(__name__)

MESSAGES = {
    400: "Invalid request format, please check API reference.",
    401: "API key is missing or invalid.",
    404: "The requested resource was not found.",
    405: "Method not allowed.",
    500: "An unexpected server error occurred.",
}


def error_response(status: int, message: str) -> JSONResponse:
    headers = {"x-should-retry": "false"} if status >= 500 or status == 409 else None
    return JSONResponse({"status": "error", "message": message}, status_code=status, headers=headers)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VoxlineError)
    async def _domain(_request: Request, exc: VoxlineError) -> JSONResponse:
        return error_response(exc.status_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else MESSAGES.get(exc.status_code, "Error")
        if exc.status_code == 404 and message == "Not Found":
            message = MESSAGES[404]
        return error_response(exc.status_code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, MESSAGES[500])
