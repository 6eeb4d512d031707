"""The engine: one bounded queue, one worker thread, one model. Every synthesis goes through here."""

from __future__ import annotations

import gc
import itertools
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from . import audio
from .config import EngineConfig
from .errors import Busy, Cancelled, EngineError, SynthesisFailed
from .pipeline import Synthesizer
from .request import MAX_SEED, SynthesisRequest
from .voices import VoiceLibrary

log = logging.getLogger(__name__)

_DONE = object()


@dataclass
class Job:
    """A queued or running request. Iterate it for audio chunks; `cancel()` stops it."""

    request: SynthesisRequest
    id: int
    stage: str = "queued"
    ignored_parameters: list[str] = field(default_factory=list)
    _events: queue.Queue = field(default_factory=queue.Queue, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def seed(self) -> int:
        return self.request.seed

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def __iter__(self) -> Iterator[audio.AudioChunk]:
        """Chunks as the worker makes them; raises the request's error, if any. Leaving early cancels."""
        finished = False
        try:
            while True:
                event = self._events.get()
                if event is _DONE:
                    finished = True
                    return
                if isinstance(event, BaseException):
                    finished = True
                    raise event
                yield event
        finally:
            if not finished:
                self.cancel()

    def result(self) -> audio.AudioChunk:
        """The whole clip, once every chunk is made."""
        return audio.join(list(self))


class Engine:
    """Accepts synthesis requests from any thread and serves them one at a time on the model."""

    def __init__(self, config: EngineConfig, library: VoiceLibrary | None = None):
        self.config = config
        self.library = library or VoiceLibrary(config.voices_dir)
        self.synthesizer = Synthesizer(config, self.library, status=self._set_status)
        self.status_message = "The model loads on first use."
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=config.queue_size)
        self._ids = itertools.count(1)
        self._running: Job | None = None
        self.cancelled_jobs = 0
        self._worker = threading.Thread(target=self._serve, name="chatterbox-engine", daemon=True)
        self._worker.start()

    def submit(self, request: SynthesisRequest) -> Job:
        """Queue `request`; raises Busy when the queue is full."""
        if request.seed is None:
            request = request.with_seed(secrets.randbelow(MAX_SEED + 1))
        job = Job(request, next(self._ids))
        job.ignored_parameters = self.synthesizer.ignored_parameters(request)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Busy(f"The studio is busy with {self.config.queue_size} queued requests; try again shortly.",
                       retry_after=max(5, 2 * self.config.queue_size)) from None
        return job

    def synthesize(self, request: SynthesisRequest) -> audio.AudioChunk:
        """Queue `request` and wait for the whole clip."""
        return self.submit(request).result()

    def status(self) -> dict:
        model = self.synthesizer.model
        return {
            "model": model.spec.name if model else None,
            "device": self.synthesizer.device,
            "precision": (model.acceleration if model else self.synthesizer.acceleration).describe(),
            "queue_depth": self._queue.qsize(),
            "busy": self._running is not None,
            "message": self.status_message,
            "cached_voices": len(self.synthesizer.cache),
            "cancelled_jobs": self.cancelled_jobs,
        }

    def close(self) -> None:
        """Stop the worker after the request it is running; queued requests are cancelled."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job._events.put(Cancelled("The studio is shutting down."))
        self._queue.put(None)
        self._worker.join(timeout=60)

    def _set_status(self, message: str) -> None:
        self.status_message = message
        log.info(message)

    def _next_job(self) -> Job | None:
        """The next queued job; while waiting, unload the model once it has been idle for the configured time."""
        idle = self.config.idle_unload_seconds
        while True:
            try:
                return self._queue.get(timeout=idle if idle > 0 and self.synthesizer.model is not None else None)
            except queue.Empty:
                self.synthesizer.unload()
                self._set_status(f"Model unloaded after {idle:g} s idle; it loads again on the next request.")

    def _serve(self) -> None:
        while (job := self._next_job()) is not None:
            self._running = job
            try:
                self._run(job)
            finally:
                self._running = None

    def _run(self, job: Job) -> None:
        if job.cancelled:
            self.cancelled_jobs += 1
            job._events.put(Cancelled("The request was cancelled before it started."))
            return
        job.stage = "running"
        started = time.perf_counter()
        try:
            for chunk in self.synthesizer.run(job.request, lambda: job.cancelled):
                job._events.put(chunk)
            if job.cancelled:
                self.cancelled_jobs += 1
            job._events.put(Cancelled("The request was cancelled.") if job.cancelled else _DONE)
        except EngineError as error:
            job._events.put(error)
        except torch.cuda.OutOfMemoryError:
            self.synthesizer.cache.clear()
            gc.collect()
            torch.cuda.empty_cache()
            log.error("Job %d ran out of GPU memory; cached voices were freed.", job.id)
            job._events.put(SynthesisFailed("The GPU ran out of memory; try shorter text or close other GPU programs."))
        except Exception as error:
            log.exception("Synthesis failed")
            job._events.put(SynthesisFailed(f"Synthesis failed unexpectedly ({error.__class__.__name__}: {error})."))
        finally:
            job.stage = "done"
            log.info("job %d finished in %.1f s", job.id, time.perf_counter() - started)
