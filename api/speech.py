"""Speech routes: OpenAI's `/v1/audio/speech`, one-call cloning, and the chunked stream for Chatterbox clients."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from engine import LANGUAGES, MODELS, Engine, NotFound, SynthesisRequest, Voice, VoiceLibrary

from engine.presets import load_preset

from . import streaming
from .auth import key_dependencies
from .errors import ApiError, ApiRoute
from .schemas import ResponseFormat, SpeechRequest, VoiceRef
from .uploads import read_upload

MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "chatterbox-tts")
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
                 "marin", "cedar")
PARAMETERS = ("exaggeration", "cfg_weight", "temperature", "top_p", "min_p", "repetition_penalty", "speed", "seed")
MULTILINGUAL = "chatterbox-multilingual"

AUDIO_RESPONSES = {200: {"content": {content_type: {} for content_type in
                                     ("audio/mpeg", "audio/ogg", "audio/aac", "audio/flac", "audio/wav", "audio/pcm",
                                      "text/event-stream")},
                         "description": "the audio, whole or streamed"}}


def resolve_model(name: str | None) -> str | None:
    """A Chatterbox variant, or None (the studio's default) for the OpenAI and legacy names."""
    if name is None or name in MODEL_ALIASES:
        return None
    if name in MODELS:
        return name
    raise NotFound(f"Unknown model '{name}'; use one of {', '.join(MODELS + MODEL_ALIASES)}.", "model")


def resolve_voice(voice: str | VoiceRef, settings, library: VoiceLibrary) -> tuple[Voice, dict, str | None]:
    """(voice, its saved default settings, its language) for a library id, OpenAI name, alias or language code."""
    wanted = (voice.id if isinstance(voice, VoiceRef) else voice).strip()
    voice_id = settings.aliases.get(wanted.lower(), wanted)
    if voice_id == wanted and wanted.lower() in OPENAI_VOICES:
        return Voice.builtin(), {}, None
    try:
        saved = library.get(voice_id)
    except NotFound:
        if wanted.lower() in LANGUAGES:
            return Voice.builtin(), {}, wanted.lower()
        raise NotFound(f"Unknown voice '{wanted}'; use an id from GET /api/speakers, an OpenAI voice name "
                       f"({', '.join(OPENAI_VOICES)}) or a language code.", "voice") from None
    return Voice(library_id=saved.id), saved.settings, saved.language


def _number(value: str | float | None) -> float | None:
    """A numeric `instructions` (as older Chatterbox clients send exaggeration), else None."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _explicit(body: SpeechRequest, settings) -> dict:
    """The parameters the body itself sets, with the compatibility readings of `speed` and `instructions`."""
    values = {name: getattr(body, name) for name in PARAMETERS if getattr(body, name) is not None}
    if settings.speed_as_cfg and "speed" in values:
        values.setdefault("cfg_weight", values.pop("speed"))
    exaggeration = _number(body.instructions)
    if exaggeration is not None:
        values.setdefault("exaggeration", exaggeration)
    return values


def synthesis_request(body: SpeechRequest, settings, library: VoiceLibrary, voice: Voice | None = None) -> SynthesisRequest:
    """The engine request for `body`: voice defaults, then the preset, then the body's own values."""
    if len(body.input) > settings.max_input_chars:
        raise ApiError(413, f"The input is {len(body.input)} characters; the limit is {settings.max_input_chars}.",
                       "input", "input_too_long")
    model = resolve_model(body.model)
    defaults, voice_language = {}, None
    if voice is None:
        voice, defaults, voice_language = resolve_voice(body.voice, settings, library)
    preset = load_preset(settings.presets_dir, body.preset) if body.preset else {}
    values = {k: v for k, v in {**defaults, **preset}.items() if k in PARAMETERS} | _explicit(body, settings)
    language = body.language or voice_language
    if language and language.lower() != "en" and model is None:
        model = MULTILINGUAL
    return SynthesisRequest(body.input, voice=voice, model=model, language=language, **values)


def build_router(engine: Engine, settings) -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=key_dependencies(settings), tags=["speech"])

    @router.post("/v1/audio/speech", responses=AUDIO_RESPONSES, response_class=Response)
    def speech(body: SpeechRequest) -> Response:
        """OpenAI's text to speech, with Chatterbox's parameters; whole, chunked (`audio`) or as events (`sse`)."""
        if body.stream_format == "sse":
            streaming.check_streamable(body.response_format)
        job = engine.submit(synthesis_request(body, settings, engine.library))
        return streaming.respond(job, body.response_format, body.stream_format)

    @router.post("/api/generate_tts_stream", responses=AUDIO_RESPONSES, response_class=Response)
    def generate_tts_stream(body: SpeechRequest) -> Response:
        """The same body as /v1/audio/speech (`text` may stand for `input`); audio always streamed in chunks."""
        job = engine.submit(synthesis_request(body, settings, engine.library))
        return streaming.respond(job, body.response_format, "audio")

    @router.post("/v2/audio/speech_with_prompt", responses=AUDIO_RESPONSES, response_class=Response)
    def speech_with_prompt(
        input: str = Form(..., description="the text to say"),
        audio_prompt: UploadFile = File(..., description="a few seconds of the voice to clone"),
        response_format: ResponseFormat = Form("mp3"),
        cfg_weight: float | None = Form(None),
        exaggeration: float | None = Form(None),
        temperature: float | None = Form(None),
        speed: float | None = Form(None),
        seed: int | None = Form(None),
        language: str | None = Form(None),
        model: str | None = Form(None),
    ) -> Response:
        """Clone a voice in one call: the reference clip and the text in one multipart form; the audio back."""
        clip = read_upload(audio_prompt, settings.max_upload_mb, "audio_prompt")
        body = SpeechRequest(input=input, response_format=response_format, cfg_weight=cfg_weight,
                             exaggeration=exaggeration, temperature=temperature, speed=speed, seed=seed,
                             language=language, model=model)
        job = engine.submit(synthesis_request(body, settings, engine.library, voice=Voice(clip=clip)))
        return streaming.respond(job, response_format, None)

    return router
