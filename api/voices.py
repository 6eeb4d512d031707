"""The voice library over HTTP: list, create from an upload, fetch the clip, delete."""

from __future__ import annotations

import json
import mimetypes

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from engine import LANGUAGES, Engine, InvalidRequest, SavedVoice, SynthesisRequest
from engine.compose import PARAMETERS
from settings import Settings

from .auth import key_dependencies
from .errors import ApiRoute
from .uploads import read_upload


def speaker(voice: SavedVoice) -> dict:
    """A library voice as clients list it: id (its file name), name, and the studio's extras."""
    return {"id": voice.id, "name": voice.name, "language": voice.language, "settings": voice.settings,
            "temporary": voice.expires_at is not None, "expires_at": voice.expires_at}


def parse_defaults(text: str | None) -> dict:
    """A voice's default settings from a JSON object of synthesis parameters, checked against their ranges."""
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError:
        raise InvalidRequest("settings must be a JSON object, e.g. {\"exaggeration\": 0.7}.", "settings") from None
    if not isinstance(values, dict) or set(values) - set(PARAMETERS):
        raise InvalidRequest(f"settings must be a JSON object with keys from {', '.join(PARAMETERS)}.", "settings")
    SynthesisRequest("check", **values)
    return values


def build_router(engine: Engine, settings: Settings) -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=key_dependencies(settings), tags=["voice library"])
    library = engine.library
    composer = settings.composer(engine.config, library)

    @router.get("/api/speakers")
    def speakers() -> dict:
        """Every library voice; its `id` is what `voice` takes in a speech request."""
        return {"speakers": [speaker(v) for v in library.list()]}

    @router.post("/api/create_speaker")
    def create_speaker(
        file: UploadFile = File(..., description="a few seconds (5 to 10 s is best) of one person speaking"),
        name: str | None = Form(None, description="display name; the file name when left out"),
        language: str | None = Form(None, description="the voice's language code (en, fr, ms, ...)"),
        settings_json: str | None = Form(None, alias="settings",
                                         description="default parameters as JSON, e.g. {\"exaggeration\": 0.7}"),
        temporary: bool = Form(False, description="expire after --temporary-voice-seconds"),
    ) -> dict:
        """Save a voice; its id is the uploaded file's name, made safe and unique, and is returned."""
        clip = read_upload(file, settings.max_upload_mb, "file")
        if language is not None and language.lower() not in LANGUAGES:
            raise InvalidRequest(f"Unsupported language '{language}'; use one of {', '.join(sorted(LANGUAGES))}.",
                                 "language")
        defaults = parse_defaults(settings_json)
        composer.check_clip(clip)
        voice = library.add(file.filename or "voice.wav", clip, name, language and language.lower(), defaults,
                            settings.temporary_voice_seconds if temporary else None)
        return speaker(voice)

    @router.get("/api/speakers/{voice_id}/audio", response_class=Response,
                responses={200: {"content": {"audio/*": {}}, "description": "the clip as it was uploaded"}})
    def speaker_audio(voice_id: str) -> Response:
        """The voice's reference clip, as it was uploaded."""
        return Response(library.clip(voice_id),
                        media_type=mimetypes.guess_type(voice_id)[0] or "application/octet-stream")

    @router.delete("/api/speakers/{voice_id}")
    def delete_speaker(voice_id: str) -> dict:
        library.delete(voice_id)
        return {"id": voice_id, "deleted": True}

    return router
