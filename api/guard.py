"""The API's outer guard, ahead of Gradio's own middleware: CORS, a per-client rate limit, and body size.

Each is checked before a request body is read, so an oversized upload with a Content-Length is refused without being
received; a body sent in chunks without one is counted as it arrives and refused once it passes the limit.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import defaultdict, deque
from typing import AsyncIterator, Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from settings import Settings

from .errors import API_PREFIXES, ApiError, response

WINDOW_SECONDS = 60.0
BODY_SLACK_BYTES = 64 * 1024  # multipart headers and form fields around an upload


class RateLimiter:
    """At most `per_minute` requests per client in any 60 s window; 0 means no limit."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> int:
        """0 when `client` may go ahead now (and counts this request), else seconds until it may."""
        if self.per_minute <= 0:
            return 0
        now = self._clock()
        with self._lock:
            seen = self._seen[client]
            while seen and seen[0] <= now - WINDOW_SECONDS:
                seen.popleft()
            if len(seen) >= self.per_minute:
                return max(1, math.ceil(seen[0] + WINDOW_SECONDS - now))
            seen.append(now)
            return 0


class ApiGuard:
    """Pure ASGI middleware over the API paths; everything else passes through untouched."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.origins = set(settings.cors_origins)
        self.limiter = RateLimiter(settings.rate_limit)
        self.max_body = settings.max_upload_mb * 1024 * 1024 + BODY_SLACK_BYTES
        self.too_large = ApiError(413, f"The request body is larger than {settings.max_upload_mb} MB; send a shorter "
                                       f"clip (10 s is plenty).", None, "file_too_large", headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            await self._preflight(origin, headers)(scope, receive, send)
            return
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await response(refusal)(scope, receive, send)
            return
        await BodyLimit(self.max_body, self.too_large)(self.app, scope, receive, self._with_cors(send, origin))

    def _refusal(self, scope: Scope, headers: Headers) -> ApiError | None:
        if scope["path"] != "/health" and (wait := self.limiter.wait_seconds((scope.get("client") or ("?",))[0])):
            return ApiError(429, f"Too many requests from this address; try again in {wait} s.", None,
                            "rate_limited", "rate_limit_error", {"Retry-After": str(wait)})
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return self.too_large
        return None

    def _preflight(self, origin: str, headers: Headers) -> PlainTextResponse:
        if origin not in self.origins:
            return PlainTextResponse("Disallowed CORS origin; start the studio with --cors-origins to allow it.",
                                     status_code=400)
        return PlainTextResponse("OK", headers={
            "Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Max-Age": "600",
            "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": headers.get("access-control-request-headers", "*")})

    def _with_cors(self, send: Send, origin: str | None) -> Send:
        """`send`, with the CORS answer header set for an allowed origin and removed for any other."""
        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                for name in [k for k in answer if k.startswith("access-control-")]:
                    del answer[name]
                if origin in self.origins:
                    answer["Access-Control-Allow-Origin"] = origin
                    answer.add_vary_header("Origin")
            await send(message)

        return guarded


class BodyTooLarge(Exception):
    """Raised into the route reading a body that has passed the limit."""


class BodyLimit:
    """One request whose body is counted as it is received: past `limit` bytes the route's reading fails, and
    whatever it would have answered is replaced by the 413 `refusal`."""

    def __init__(self, limit: int, refusal: ApiError):
        self.limit = limit
        self.refusal = refusal
        self.received = 0
        self.exceeded = False
        self.started = False

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.exceeded = True
                    raise BodyTooLarge()
            return message

        async def replaced(message: Message) -> None:
            if not self.exceeded:
                self.started = True
                await send(message)
            elif not self.started:
                self.started = True
                await response(self.refusal)(scope, receive, send)

        try:
            await app(scope, counted, replaced)
        except Exception:
            if not self.exceeded:  # the route's failure to read a refused body is expected; any other is not
                raise
        if self.exceeded and not self.started:
            await response(self.refusal)(scope, receive, send)


def install(app, settings: Settings) -> None:
    """Put the guard outermost on `app`, ahead of middleware Gradio added, and rebuild its middleware stack."""
    app.user_middleware.insert(0, Middleware(ApiGuard, settings=settings))
    app.middleware_stack = app.build_middleware_stack()


def guarded_lifespan(settings: Settings) -> Callable:
    """A lifespan that installs the guard as the server starts, before it accepts its first connection."""
    @contextlib.asynccontextmanager
    async def lifespan(app) -> AsyncIterator[None]:
        install(app, settings)
        yield

    return lifespan
