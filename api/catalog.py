"""What the studio offers: models, voices and its health, in the shapes OpenAI-style clients read."""

from __future__ import annotations

from fastapi import APIRouter

from engine import MODELS, Engine, NotFound
from engine.compose import OPENAI_VOICES
from settings import Settings

from .auth import key_dependencies
from .errors import ApiRoute
from .speech import MODEL_ALIASES

OWNER = "resemble-ai"


def _model(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": OWNER}


def build_router(engine: Engine, settings: Settings) -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=key_dependencies(settings), tags=["catalog"])

    @router.get("/v1/models")
    def models() -> dict:
        """The Chatterbox variants and the OpenAI names that stand for the default one."""
        return {"object": "list", "data": [_model(m) for m in MODELS + MODEL_ALIASES]}

    @router.get("/v1/models/{model_id}")
    def model(model_id: str) -> dict:
        if model_id not in MODELS + MODEL_ALIASES:
            raise NotFound(f"Unknown model '{model_id}'; list models with GET /v1/models.", "model")
        return _model(model_id)

    @router.get("/v1/audio/models")
    def audio_models() -> dict:
        return {"models": [{"id": m} for m in MODELS + MODEL_ALIASES]}

    @router.get("/v1/audio/voices")
    def audio_voices() -> dict:
        """Library voices, then the OpenAI names (each the built-in voice or the library voice it is aliased to)."""
        aliases = settings.aliases
        library = [{"id": v.id, "name": v.name} for v in engine.library.list()]
        named = [{"id": name, "name": f"{name} ({aliases.get(name, 'built-in voice')})"} for name in OPENAI_VOICES]
        return {"voices": library + named}

    return router


def build_health_router(engine: Engine) -> APIRouter:
    """`/health`, open even when an API key is set, so monitors need no secret."""
    router = APIRouter(route_class=ApiRoute, tags=["catalog"])

    @router.get("/health")
    def health() -> dict:
        """Whether the studio is up, which model is loaded, on which device, how deep the queue is and how many
        requests are running."""
        return {"status": "ok", **engine.status()}

    return router
