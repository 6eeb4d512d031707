"""`/ws/tts`: send a JSON speech request, receive binary audio chunks and JSON progress events, then `done`."""

from __future__ import annotations

from typing import Iterator

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from engine import Engine, EngineError, Job
from engine.audio import StreamEncoder
from settings import Settings

from . import streaming
from .auth import key_matches, socket_key
from .errors import ApiError, body, from_engine
from .schemas import SpeechRequest
from .speech import check_streamable_take, synthesis_request


def _error(error: ApiError) -> dict:
    return {"type": "error", "status": error.status, **body(error.message, error.type, error.param, error.code)}


def _messages(job: Job, fmt: str) -> Iterator[bytes | dict]:
    """Audio bytes and progress events as the job makes chunks, then `done` (or an error event)."""
    encoder = StreamEncoder(fmt)
    seconds = 0.0
    try:
        for chunk in job:
            seconds += chunk.duration
            yield {"type": "progress", "chunk": chunk.index + 1, "total": chunk.total, "seconds": round(seconds, 3)}
            if data := encoder.encode(chunk.samples):
                yield data
    except EngineError as error:
        yield _error(from_engine(error))
        return
    if tail := encoder.finish():
        yield tail
    yield {"type": "done", "seed": job.seed, "seconds": round(seconds, 3), "format": fmt,
           "sample_rate": encoder.sample_rate, "usage": streaming.usage(job.request.text, seconds)}


def _bad_request(error: ValidationError) -> ApiError:
    first = error.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    return ApiError(400, f"{param + ': ' if param else ''}{first['msg']}", param, "invalid_value")


def build_router(engine: Engine, settings: Settings) -> APIRouter:
    router = APIRouter(tags=["speech"])
    composer = settings.composer(engine.config, engine.library)

    def submit(message: str) -> tuple[Job, str]:
        request = SpeechRequest.model_validate_json(message)
        streaming.check_streamable(request.response_format)
        synthesis = synthesis_request(request, settings, composer)
        check_streamable_take(synthesis)
        return engine.submit(synthesis), request.response_format

    @router.websocket("/ws/tts")
    async def tts_socket(websocket: WebSocket) -> None:
        """One connection, any number of requests, each answered in order."""
        if not key_matches(settings.api_key, socket_key(websocket)):
            await websocket.close(code=1008, reason="Missing or wrong API key.")
            return
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive_text()
                try:
                    job, fmt = await anyio.to_thread.run_sync(submit, message)
                except ValidationError as error:
                    await websocket.send_json(_error(_bad_request(error)))
                    continue
                except ApiError as error:
                    await websocket.send_json(_error(error))
                    continue
                except EngineError as error:
                    await websocket.send_json(_error(from_engine(error)))
                    continue
                async for item in streaming.relay(job, _messages(job, fmt)):
                    await (websocket.send_bytes(item) if isinstance(item, bytes) else websocket.send_json(item))
        except WebSocketDisconnect:
            return

    return router
