"""The optional API key: a Bearer token on every API route when `--api-key` is set."""

from __future__ import annotations

import secrets

from fastapi import Depends, Security, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from settings import Settings

from .errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="the key given with --api-key / CHATTERBOX_API_KEY")


def key_matches(expected: str | None, presented: str | None) -> bool:
    """True when no key is configured, or `presented` is that key."""
    if not expected:
        return True
    return presented is not None and secrets.compare_digest(presented.encode(), expected.encode())


def key_dependencies(settings: Settings) -> list:
    """Route dependencies that answer 401 when a key is configured and the request lacks it."""
    if not settings.api_key:
        return []

    def check(credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
        if not key_matches(settings.api_key, credentials.credentials if credentials else None):
            raise ApiError(401, "Missing or wrong API key; send it as 'Authorization: Bearer <key>'.", None,
                           "invalid_api_key", "authentication_error", {"WWW-Authenticate": "Bearer"})

    return [Depends(check)]


def socket_key(websocket: WebSocket) -> str | None:
    """The key a WebSocket client sent: a Bearer header, or `?api_key=` (browsers cannot set headers)."""
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return websocket.query_params.get("api_key")
