"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, for every API route."""

from __future__ import annotations

import logging
from typing import Any, Callable

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import Busy, Cancelled, EngineError, InvalidRequest, ModelUnavailable, NotFound, TextTooLong

log = logging.getLogger(__name__)

# Paths whose errors take OpenAI's shape, and which the API guard covers; Gradio's own routes keep theirs. The last
# three are the routes of the server SillyTavern's Chatterbox provider was written for (api/compat/sillytavern.py).
API_PREFIXES = ("/v1/", "/v2/", "/api/", "/ws/", "/health", "/tts", "/get_predefined_voices", "/get_reference_files")

NO_RETRY = {"x-should-retry": "false"}


class ApiError(Exception):
    """An error the API itself reports (not the engine): status, OpenAI fields and extra headers."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = headers or {}


def body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def from_engine(error: EngineError) -> ApiError:
    """The status, type and headers an OpenAI client expects for an engine error."""
    if isinstance(error, Busy):
        return ApiError(429, error.message, error.param, error.code, "rate_limit_error",
                        {"Retry-After": str(error.retry_after)})
    if isinstance(error, TextTooLong):
        return ApiError(413, error.message, "input", error.code)
    if isinstance(error, InvalidRequest):
        return ApiError(400, error.message, error.param, error.code)
    if isinstance(error, NotFound):
        return ApiError(404, error.message, error.param, error.code)
    if isinstance(error, ModelUnavailable):
        return ApiError(503, error.message, error.param, error.code, "server_error", NO_RETRY)
    if isinstance(error, Cancelled):
        return ApiError(503, error.message, error.param, error.code, "server_error", {"Retry-After": "5"})
    return ApiError(500, error.message, error.param, error.code, "server_error", NO_RETRY)


def response(error: ApiError) -> JSONResponse:
    return JSONResponse(body(error.message, error.type, error.param, error.code), status_code=error.status,
                        headers=error.headers)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIXES)


async def _api_error(request: Request, error: ApiError) -> Response:
    return response(error)


async def _engine_error(request: Request, error: EngineError) -> Response:
    return response(from_engine(error))


async def _validation_error(request: Request, error: RequestValidationError) -> Response:
    """400 in OpenAI's shape instead of FastAPI's 422, naming the first bad field."""
    if not _is_api(request):
        return await request_validation_exception_handler(request, error)
    first = error.errors()[0] if error.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "form")]
    param = ".".join(location) or None
    message = f"{param + ': ' if param else ''}{first.get('msg', 'invalid request')}"
    return response(ApiError(400, message, param, "invalid_value"))


async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
    if not _is_api(request):
        return await http_exception_handler(request, error)
    return response(ApiError(error.status_code, str(error.detail), None, None,
                             "invalid_request_error" if error.status_code < 500 else "server_error",
                             dict(error.headers or {})))


EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    EngineError: _engine_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
}


class ApiRoute(APIRoute):
    """A route whose unexpected failures answer 500 in OpenAI's shape with `x-should-retry: false`.

    Gradio runs its app with debug on, which would otherwise answer with a traceback page.
    """

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, EngineError, RequestValidationError, StarletteHTTPException):
                raise
            except Exception as error:
                log.exception("API request failed")
                return response(ApiError(500, f"Internal error ({error.__class__.__name__}); see the studio's log.",
                                         None, "internal_error", "server_error", NO_RETRY))

        return guarded
