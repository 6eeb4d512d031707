"""HTTP routes over the engine, attached to the FastAPI app that Gradio's launch creates.

A thin adapter: requests become `SynthesisRequest`s for the engine's one queue; engine errors become
OpenAI-shaped error answers.
"""

from __future__ import annotations

from typing import Any

from engine import Engine
from settings import Settings

from . import captions, catalog, socket, speech, voices
from .compat import sillytavern
from .errors import EXCEPTION_HANDLERS
from .guard import guarded_lifespan

DESCRIPTION = ("OpenAI-compatible text to speech with Chatterbox voice cloning, a voice library and streaming. "
               "See the README for examples.")


def routes(engine: Engine, settings: Settings) -> list:
    """Every API route, in the order they are matched."""
    return [
        *catalog.build_health_router(engine).routes,
        *catalog.build_router(engine, settings).routes,
        *speech.build_router(engine, settings).routes,
        *captions.build_router(engine, settings).routes,
        *voices.build_router(engine, settings).routes,
        *socket.build_router(engine, settings).routes,
        *sillytavern.build_router(engine, settings).routes,
    ]


def app_kwargs(engine: Engine, settings: Settings) -> dict[str, Any]:
    """What `demo.launch(app_kwargs=...)` needs so the one server also serves these routes and /docs, behind the
    guard from its first request on."""
    return {
        "lifespan": guarded_lifespan(settings),
        "routes": routes(engine, settings),
        "exception_handlers": dict(EXCEPTION_HANDLERS),
        "docs_url": "/docs",
        "openapi_url": "/openapi.json",
        "title": "Chatterbox Studio API",
        "description": DESCRIPTION,
    }
