"""SillyTavern's "Chatterbox" TTS provider (public/scripts/extensions/tts/chatterbox.js), unmodified: the routes of the
server it was written for (devnen/Chatterbox-TTS-Server), answered from the studio's library and composer.

- Predefined voices are the library's voices (with their saved settings and language) and the built-in voice.
- Reference files are the library's clips; `clone` mode speaks a clip alone, with only the request's own values.
- `split_text` with `chunk_size` sets the request's chunk length, at most the studio's own; without `split_text` the
  studio's own length is kept, as the model does not speak a long text in one piece.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from engine import PARAMETER_RANGES, Ask, Engine, InvalidRequest, RequestComposer, SynthesisRequest
from engine.audio import MODEL_SAMPLE_RATE
from engine.compose import BUILTIN_VOICE
from engine.models.variants import LANGUAGES, VARIANTS
from settings import Settings

from .. import streaming
from ..auth import key_dependencies
from ..errors import ApiRoute
from ..speech import AUDIO_RESPONSES


class ChatterboxTts(BaseModel):
    """`POST /tts` (and `GET /tts-stream`'s query): the original server's fields and limits."""

    text: str = Field(min_length=1)
    voice_mode: Literal["predefined", "clone"] = "predefined"
    predefined_voice_id: str | None = Field(None, description="a file name from GET /get_predefined_voices")
    reference_audio_filename: str | None = Field(None, description="a file name from GET /get_reference_files")
    output_format: Literal["wav", "opus", "mp3"] = "wav"
    split_text: bool = True
    chunk_size: int = Field(120, ge=50, le=500, description="characters per chunk, at most the studio's own")
    temperature: float | None = None
    exaggeration: float | None = None
    cfg_weight: float | None = None
    seed: int | None = Field(None, description="a negative seed is a random one")
    speed_factor: float | None = None
    language: str | None = None


def _voice_file(name: str | None, field: str, mode: str) -> str:
    if not name:
        raise InvalidRequest(f"voice_mode '{mode}' needs {field}: a file name from GET "
                             f"/get_{'reference_files' if mode == 'clone' else 'predefined_voices'}.", field)
    return name


def ask(body: ChatterboxTts, engine: Engine) -> Ask:
    """What the provider asks for, in the composer's terms."""
    values = {"temperature": body.temperature, "exaggeration": body.exaggeration, "cfg_weight": body.cfg_weight,
              "speed": body.speed_factor, "seed": None if body.seed is None or body.seed < 0 else body.seed}
    if body.voice_mode == "clone":
        clip = engine.library.clip(_voice_file(body.reference_audio_filename, "reference_audio_filename", "clone"))
        return Ask(body.text, clip=clip, language=body.language, values=values)
    voice = _voice_file(body.predefined_voice_id, "predefined_voice_id", "predefined")
    return Ask(body.text, voice=voice, language=body.language, values=values)


def chunk_length(body: ChatterboxTts, studio_chunk_chars: int) -> int | None:
    """The request's chunk length: `chunk_size` where it splits and the studio allows it; None: the studio's."""
    return min(body.chunk_size, studio_chunk_chars) if body.split_text else None


def synthesis_request(body: ChatterboxTts, engine: Engine, composer: RequestComposer) -> SynthesisRequest:
    """The engine request for the provider's body, with its chunk length."""
    request = composer.compose(ask(body, engine))
    return replace(request, max_chars_per_chunk=chunk_length(body, engine.config.chunk_chars))


def predefined_voices(engine: Engine) -> list[dict[str, str]]:
    """The library's voices, then the built-in one, as `{display_name, filename[, language]}`."""
    voices = [{"display_name": v.name, "filename": v.id, **({"language": v.language} if v.language else {})}
              for v in engine.library.list()]
    return voices + [{"display_name": "Built-in voice", "filename": BUILTIN_VOICE}]


def reference_files(engine: Engine) -> list[str]:
    return [voice.id for voice in engine.library.list()]


def generation_defaults(engine: Engine) -> dict:
    """The values a request leaves out, under the original server's names."""
    defaults = {name: PARAMETER_RANGES[name][2] for name in ("temperature", "exaggeration", "cfg_weight")}
    return {**defaults, "seed": 0, "speed_factor": PARAMETER_RANGES["speed"][2],
            "language": VARIANTS[engine.config.model].languages[0]}


def model_info(engine: Engine) -> dict:
    status = engine.status()
    spec = VARIANTS[status["model"] or engine.config.model]
    return {"loaded": status["model"] is not None, "type": spec.name, "device": status["device"],
            "sample_rate": MODEL_SAMPLE_RATE, "supports_multilingual": len(spec.languages) > 1,
            "supported_languages": {code: LANGUAGES[code] for code in spec.languages}}


def build_router(engine: Engine, settings: Settings) -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=key_dependencies(settings), tags=["sillytavern"])
    composer = settings.composer(engine.config, engine.library)

    @router.get("/api/ui/initial-data")
    def initial_data() -> dict:
        """What the original server's page loads first; SillyTavern reads it to see that the server is up."""
        return {"config": {"generation_defaults": generation_defaults(engine),
                           "audio_output": {"format": "wav", "sample_rate": MODEL_SAMPLE_RATE}},
                "reference_files": reference_files(engine), "predefined_voices": predefined_voices(engine),
                "presets": [], "model_info": model_info(engine)}

    @router.get("/get_predefined_voices")
    def get_predefined_voices() -> list[dict[str, str]]:
        return predefined_voices(engine)

    @router.get("/get_reference_files")
    def get_reference_files() -> list[str]:
        return reference_files(engine)

    @router.post("/tts", responses=AUDIO_RESPONSES, response_class=Response)
    def tts(body: ChatterboxTts) -> Response:
        """The whole clip in one file."""
        return streaming.respond(engine.submit(synthesis_request(body, engine, composer)), body.output_format, None)

    @router.get("/tts-stream", responses=AUDIO_RESPONSES, response_class=Response)
    def tts_stream(query: Annotated[ChatterboxTts, Query()]) -> Response:
        """The provider's streaming mode, whose URL an audio element plays: chunks as they are made."""
        job = engine.submit(synthesis_request(query, engine, composer))
        return streaming.respond(job, query.output_format, "audio")

    return router
