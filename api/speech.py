"""Speech routes: OpenAI's `/v1/audio/speech`, one-call cloning, and the chunked stream for Chatterbox clients."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from engine import MODELS, Ask, Engine, InvalidRequest, NotFound, RequestComposer, SynthesisRequest, audio
from engine.compose import PARAMETERS
from engine.quality import PickedTake, checker_for, make_take, needs_whole_clip, recognizer_for
from settings import Settings

from . import streaming
from .auth import key_dependencies
from .errors import ApiRoute
from .schemas import ResponseFormat, SpeechRequest, VoiceRef
from .uploads import read_upload

MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "chatterbox-tts")

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


def _number(value: str | float | None) -> float | None:
    """A numeric `instructions` (as older Chatterbox clients send exaggeration), else None."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _explicit(body: SpeechRequest, settings: Settings) -> dict:
    """The parameters the body itself sets, with the compatibility readings of `speed` and `instructions`."""
    values = {name: getattr(body, name) for name in PARAMETERS if getattr(body, name) is not None}
    if settings.speed_as_cfg and "speed" in values:
        values.setdefault("cfg_weight", values.pop("speed"))
    exaggeration = _number(body.instructions)
    if exaggeration is not None:
        values.setdefault("exaggeration", exaggeration)
    return values


def ask(body: SpeechRequest, settings: Settings, clip: bytes | None = None, captions: bool = False) -> Ask:
    """What an OpenAI-style body asks for, in the composer's terms."""
    voice = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
    return Ask(body.input, voice=voice, clip=clip, model=resolve_model(body.model), language=body.language,
               preset=body.preset, values=_explicit(body, settings), captions=captions)


def synthesis_request(body: SpeechRequest, settings: Settings, composer: RequestComposer,
                      clip: bytes | None = None) -> SynthesisRequest:
    """The engine request for `body` (with `clip` as its voice when one was uploaded)."""
    return composer.compose(ask(body, settings, clip))


def check_streamable_take(request: SynthesisRequest) -> None:
    """Refuse candidates, trim and loudness where the audio is streamed or timed (captions): they need the whole
    take first."""
    if needs_whole_clip(request):
        raise InvalidRequest("candidates, trim and loudness need the whole take before any of it is sent, and change "
                             "its timing: only POST /v1/audio/speech without stream_format takes them.",
                             "stream_format")


def take_headers(take: PickedTake) -> dict[str, str]:
    """The seed of each chunk's chosen take and, when takes were heard, the worst chunk's character error rate."""
    headers = {"X-Seed": str(take.seeds[0]), "X-Chunk-Seeds": ",".join(map(str, take.seeds))}
    if take.worst is not None:
        headers["X-Character-Error-Rate"] = f"{take.worst.cer:.4f}"
    return headers


def build_router(engine: Engine, settings: Settings) -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=key_dependencies(settings), tags=["speech"])
    composer = settings.composer(engine.config, engine.library)

    @router.post("/v1/audio/speech", responses=AUDIO_RESPONSES, response_class=Response)
    def speech(body: SpeechRequest) -> Response:
        """OpenAI's text to speech, with Chatterbox's parameters; whole, chunked (`audio`) or as events (`sse`)."""
        if body.stream_format == "sse":
            streaming.check_streamable(body.response_format)
        request = synthesis_request(body, settings, composer)
        if body.stream_format is not None:
            check_streamable_take(request)
        elif needs_whole_clip(request):
            return finished(request, body.response_format)
        return streaming.respond(engine.submit(request), body.response_format, body.stream_format)

    def finished(request: SynthesisRequest, fmt: str) -> Response:
        """The whole take, its candidates heard and its edges and loudness finished as the request asks."""
        recognizer = recognizer_for(engine.config.asr_model, engine.config.device)
        take = make_take(engine, request, checker_for(request, recognizer))
        return Response(audio.encode(take.clip.samples, take.clip.sample_rate, fmt),
                        media_type=audio.FORMATS[fmt][0], headers=take_headers(take))

    @router.post("/api/generate_tts_stream", responses=AUDIO_RESPONSES, response_class=Response)
    def generate_tts_stream(body: SpeechRequest) -> Response:
        """The same body as /v1/audio/speech (`text` may stand for `input`); audio always streamed in chunks."""
        request = synthesis_request(body, settings, composer)
        check_streamable_take(request)
        return streaming.respond(engine.submit(request), body.response_format, "audio")

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
        job = engine.submit(synthesis_request(body, settings, composer, clip))
        return streaming.respond(job, response_format, None)

    return router
