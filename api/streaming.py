"""Turning an engine Job into an HTTP answer: one file, chunked audio, or server-sent events.

The job is iterated in worker threads, never on the event loop; when the client goes away, whether it was waiting
for a whole file or reading a stream, the job is cancelled.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
from typing import AsyncIterator, Callable, Iterator, TypeVar

import anyio
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from engine import AudioChunk, EngineError, InvalidRequest, Job, SynthesisFailed
from engine.audio import FORMATS, StreamEncoder, encode, join
from engine.text.captions import CueClock

from .errors import body, from_engine, response

log = logging.getLogger(__name__)

T = TypeVar("T")

TOKENS_PER_SECOND = 25


def respond(job: Job, fmt: str, stream_format: str | None) -> Response:
    """The answer for `job`: a whole file (no stream_format, or flac), chunked audio, or SSE events."""
    headers = job_headers(job)
    if stream_format is None or (stream_format == "audio" and fmt == "flac"):
        return WholeAnswer(job, lambda chunks: whole_file(chunks, fmt, headers))
    if stream_format == "sse":
        return events(job, fmt)
    first, rest = _started(job)
    return StreamingResponse(relay(job, _encoded(job, first, rest, fmt)), media_type=FORMATS[fmt][0],
                             headers=headers)


def events(job: Job, fmt: str, captions: bool = False) -> StreamingResponse:
    """`job` as server-sent events: its audio, and with `captions` each chunk's cue after the chunk's audio."""
    first, rest = _started(job)
    clock = CueClock() if captions else None
    return StreamingResponse(relay(job, _sse(first, rest, fmt, job.request.text, clock)),
                             media_type="text/event-stream", headers={**job_headers(job), "Cache-Control": "no-cache"})


def whole_file(chunks: list[AudioChunk], fmt: str, headers: dict[str, str]) -> Response:
    clip = join(chunks)
    return Response(encode(clip.samples, clip.sample_rate, fmt), media_type=FORMATS[fmt][0], headers=headers)


class WholeAnswer(Response):
    """An answer made from the job's every chunk by `render`, while the client waits; a client that hangs up first
    cancels the job."""

    def __init__(self, job: Job, render: Callable[[list[AudioChunk]], Response]):
        super().__init__()
        self.job, self.render = job, render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hung_up = anyio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            hung_up.set()
            self.job.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            outcome = await anyio.to_thread.run_sync(self._chunks_or_error)
            group.cancel_scope.cancel()
        if hung_up.is_set():
            return
        answer = response(from_engine(outcome)) if isinstance(outcome, EngineError) else self.render(outcome)
        await answer(scope, receive, send)

    def _chunks_or_error(self) -> list[AudioChunk] | EngineError:
        try:
            return list(self.job)
        except EngineError as error:
            return error


def check_streamable(fmt: str) -> None:
    """flac needs the whole clip before it can be written, so it cannot be sent piece by piece."""
    if fmt == "flac":
        raise InvalidRequest("flac cannot be sent piece by piece; ask for mp3, opus, aac, wav or pcm.",
                             "response_format")


def job_headers(job: Job) -> dict[str, str]:
    """The seed (to reproduce the clip), and any parameters and sound tags the model ignored."""
    headers = {"X-Seed": str(job.seed)}
    if job.ignored_parameters:
        headers["X-Ignored-Parameters"] = ",".join(job.ignored_parameters)
    if job.ignored_tags:
        headers["X-Ignored-Tags"] = ",".join(job.ignored_tags)
    return headers


async def relay(job: Job, items: Iterator[T]) -> AsyncIterator[T]:
    """The items of a blocking iterator, each waited for in a worker thread; leaving early cancels the job."""
    try:
        while (item := await anyio.to_thread.run_sync(next, items, None, abandon_on_cancel=True)) is not None:
            yield item
    finally:
        job.cancel()  # a no-op once the job has finished


def _started(job: Job) -> tuple[AudioChunk, Iterator[AudioChunk]]:
    """The first chunk, waited for before answering so early errors keep their status code, and the rest."""
    chunks = iter(job)
    first = next(chunks, None)
    if first is None:
        raise SynthesisFailed("The request produced no audio.")
    return first, chunks


def _encoded(job: Job, first: AudioChunk, rest: Iterator[AudioChunk], fmt: str) -> Iterator[bytes]:
    encoder = StreamEncoder(fmt, first.sample_rate)
    try:
        for chunk in itertools.chain([first], rest):
            if data := encoder.encode(chunk.samples):
                yield data
    except EngineError as error:
        log.warning("The audio stream of job %d ended early: %s", job.id, error.message)
    if tail := encoder.finish():
        yield tail


def _sse(first: AudioChunk, rest: Iterator[AudioChunk], fmt: str, text: str,
         clock: CueClock | None = None) -> Iterator[str]:
    """`speech.audio.delta` events with base64 audio (with a `clock`, each chunk's `speech.caption` cue after its
    audio), then `speech.audio.done` with usage (or an error event)."""
    encoder = StreamEncoder(fmt, first.sample_rate)
    seconds = 0.0
    try:
        for chunk in itertools.chain([first], rest):
            seconds += chunk.duration
            if data := encoder.encode(chunk.samples):
                yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
            if clock is not None:
                yield _event({"type": "speech.caption", **clock.cue(chunk).as_dict()})
    except EngineError as error:
        yield _event({"type": "error", **body(error.message, from_engine(error).type, error.param, error.code)})
        return
    if data := encoder.finish():
        yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
    yield _event({"type": "speech.audio.done", "usage": usage(text, seconds)})


def usage(text: str, seconds: float) -> dict[str, int]:
    """Input counted in characters, output in speech tokens (25 per second of audio)."""
    output = round(seconds * TOKENS_PER_SECOND)
    return {"input_tokens": len(text), "output_tokens": output, "total_tokens": len(text) + output}


def _event(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"
