"""The ZeroGPU placement, for a Hugging Face ZeroGPU Space: a GPU is attached only while a `spaces.GPU` function
runs, so the model is put on `cuda` at start-up (ZeroGPU moves it onto the GPU it attaches) and each synthesis runs
inline, in the caller's thread, inside one `spaces.GPU` call sized from its text: the engine's rounds for that one
request, with no worker thread holding the GPU. Gradio's queue (concurrency: `request_batch`) bounds how many run.

Off a Space the `spaces` decorator returns the function as it is, so the same code runs on any machine.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from .. import audio
from ..config import EngineConfig
from ..engine import Job, client_error, job_for, model_status
from ..errors import EngineError
from ..pipeline import Synthesizer
from ..request import SynthesisRequest
from ..voices import VoiceLibrary

log = logging.getLogger(__name__)

BASE_GPU_SECONDS = 20  # loading the voice's conditionals and the first chunk's start
GPU_SECONDS_PER_CHAR = 0.12  # about 15 characters a second of speech, made at least twice as fast as it plays
MAX_GPU_SECONDS = 300  # ZeroGPU's longest call for a signed-in user


def gpu_seconds(request: SynthesisRequest) -> int:
    """The GPU time to ask ZeroGPU for: enough for the request's text, within what ZeroGPU grants."""
    return min(MAX_GPU_SECONDS, round(BASE_GPU_SECONDS + GPU_SECONDS_PER_CHAR * len(request.text)))


@dataclass(eq=False)
class InlineJob(Job):
    """A job made in the thread that reads it: iterating runs the synthesis; closing the iteration stops it at the
    next chunk."""

    make: Callable[[], Iterator[audio.AudioChunk]] | None = field(default=None, repr=False)

    def poll(self, seconds: float | None) -> Iterator[audio.AudioChunk | None]:
        """The chunks as they are made (no heartbeats: the reading thread is the one making them)."""
        self.stage = "running"
        try:
            yield from self.make()
        finally:
            self.stage = "done"


class ZeroGpuPlacement:
    """Synthesizes inline inside `spaces.GPU` calls; same submit, stream, cancel and status as Engine."""

    def __init__(self, config: EngineConfig, library: VoiceLibrary | None = None):
        import spaces

        self.config = replace(config, device="cuda") if config.device == "auto" else config
        self.library = library or VoiceLibrary(self.config.voices_dir)
        self.synthesizer = Synthesizer(self.config, self.library, status=self._set_status)
        self.status_message = "Loading the model…"
        self.cancelled_jobs = 0
        self._ids = itertools.count(1)
        self._turn = threading.Lock()  # one synthesis at a time in this process
        self._running = 0
        self._spoken_on_gpu = spaces.GPU(duration=gpu_seconds)(self._spoken)
        self.synthesizer.model_for(None)  # at start-up, as ZeroGPU needs

    @property
    def request_batch(self) -> int:
        return 1

    @property
    def requests_to_fill(self) -> int:
        return 1

    def submit(self, request: SynthesisRequest) -> Job:
        """A job that synthesizes `request` when it is read."""
        job = job_for(request, next(self._ids), self.synthesizer, InlineJob)
        job.make = lambda: self._made(job)
        return job

    def synthesize(self, request: SynthesisRequest) -> audio.AudioChunk:
        return self.submit(request).result()

    def status(self) -> dict:
        return {**model_status(self.synthesizer), "queue_depth": 0, "busy": bool(self._running),
                "running": self._running, "message": self.status_message, "cancelled_jobs": self.cancelled_jobs,
                "placement": "zerogpu"}

    def close(self) -> None:
        """Nothing runs between requests."""

    def _made(self, job: InlineJob) -> Iterator[audio.AudioChunk]:
        """`job`'s chunks from one GPU call, its errors as a client is told them."""
        with self._turn:
            self._running += 1
            try:
                yield from self._spoken_on_gpu(job.request)
            except GeneratorExit:  # the reader stopped: the GPU call ends at this chunk
                job.cancel()
                self.cancelled_jobs += 1
                raise
            except EngineError:
                raise
            except Exception as error:
                raise client_error(error, self.synthesizer, job.id) from None
            finally:
                self._running -= 1

    def _spoken(self, request: SynthesisRequest) -> Iterator[audio.AudioChunk]:
        """The engine's rounds for one request: each group of chunks sampled by T3, then vocoded. Runs inside the
        `spaces.GPU` call, so every model call happens while the GPU is attached."""
        synthesis = self.synthesizer.prepare(request, lambda: False)
        while not synthesis.finished:
            tokens = self.synthesizer.sample([synthesis])[0]
            yield from self.synthesizer.vocode(synthesis, tokens)

    def _set_status(self, message: str) -> None:
        self.status_message = message
        log.info(message)
