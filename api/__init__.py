"""HTTP routes over the engine, attached to the FastAPI app that Gradio's launch creates."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine import Engine


def build_router(engine: Engine, settings) -> APIRouter:
    router = APIRouter()

    @router.get("/health")
    def health() -> dict:
        """Whether the studio is up, which model is loaded, on which device, and how deep the queue is."""
        return {"status": "ok", **engine.status()}

    return router


def app_kwargs(engine: Engine, settings) -> dict[str, Any]:
    """What `demo.launch(app_kwargs=...)` needs so the one server also serves these routes and /docs."""
    return {"routes": build_router(engine, settings).routes, "docs_url": "/docs", "openapi_url": "/openapi.json"}
