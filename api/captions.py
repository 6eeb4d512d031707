"""`POST /v1/audio/captioned_speech`: the speech of `/v1/audio/speech` with a caption cue for each sentence, timed
to the audio made; as one JSON answer, or as events that carry each cue after its audio."""

from __future__ import annotations

import base64

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from engine import AudioChunk, Engine
from engine.audio import encode, join
from engine.text.captions import cues_of, srt, webvtt
from settings import Settings

from . import streaming
from .auth import key_dependencies
from .errors import ApiRoute
from .schemas import SpeechRequest
from .speech import ask, check_streamable_take

CAPTIONED_RESPONSES = {200: {"content": {"application/json": {}, "text/event-stream": {}},
                             "description": "the audio (base64) and its cues, whole or as events"}}


class CaptionedSpeechRequest(SpeechRequest):
    """`/v1/audio/speech`'s body; `stream` asks for events instead of one JSON answer."""

    stream: bool = Field(False, description="true: speech.audio.delta and speech.caption events as chunks are made")


def captioned(chunks: list[AudioChunk], fmt: str, headers: dict[str, str]) -> Response:
    """The JSON answer: the whole clip in `fmt` as base64, its duration, its cues, and the cues as SRT and WebVTT."""
    clip = join(chunks)
    cues = cues_of(chunks)
    return JSONResponse({"audio": base64.b64encode(encode(clip.samples, clip.sample_rate, fmt)).decode(),
                         "format": fmt, "duration": round(clip.duration, 3), "cues": [c.as_dict() for c in cues],
                         "srt": srt(cues), "vtt": webvtt(cues)}, headers=headers)


def build_router(engine: Engine, settings: Settings) -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=key_dependencies(settings), tags=["speech"])
    composer = settings.composer(engine.config, engine.library)

    @router.post("/v1/audio/captioned_speech", responses=CAPTIONED_RESPONSES, response_class=Response)
    def captioned_speech(body: CaptionedSpeechRequest) -> Response:
        """Speech with captions: each sentence is made on its own, and its cue runs from where its audio starts to
        where it ends."""
        request = composer.compose(ask(body, settings, captions=True))
        check_streamable_take(request)
        if body.stream:
            streaming.check_streamable(body.response_format)
        job = engine.submit(request)
        if body.stream:
            return streaming.events(job, body.response_format, captions=True)
        headers = streaming.job_headers(job)
        return streaming.WholeAnswer(job, lambda chunks: captioned(chunks, body.response_format, headers))

    return router
