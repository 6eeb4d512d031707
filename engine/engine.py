"""The engine: one bounded queue, one worker thread, one model. Every synthesis goes through here.

The worker serves requests in rounds: each round samples the next group of chunks of every running request in one
T3 batch (as many as the acceleration allows), then vocodes each request's group and hands its audio over, the
requests that have heard nothing yet first. Queued requests join between rounds, up to the request batch; one for
another model waits until the running ones are done.
"""

from __future__ import annotations

import gc
import itertools
import logging
import queue
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch

from . import audio
from .config import EngineConfig
from .errors import Busy, Cancelled, EngineError, SynthesisFailed
from .models import LoadedModel
from .pipeline import Synthesis, Synthesizer, chunk_texts
from .request import MAX_SEED, SynthesisRequest
from .voices import VoiceLibrary

log = logging.getLogger(__name__)

_DONE = object()


@dataclass(eq=False)
class Job:
    """A queued or running request. Iterate it for audio chunks; `cancel()` stops it."""

    request: SynthesisRequest
    id: int
    chunks: int  # how many audio chunks it delivers
    stage: str = "queued"
    activity: str = "waiting for the requests ahead"  # what the worker is doing for it, in a person's words
    ignored_parameters: list[str] = field(default_factory=list)
    ignored_tags: list[str] = field(default_factory=list)  # sound tags its model does not perform, left unsaid
    started: float = 0.0
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

    def deliver(self, chunk: audio.AudioChunk) -> None:
        """Hand a made chunk to whoever iterates the job."""
        self._events.put(chunk)

    def end(self, error: EngineError | None = None) -> None:
        """End the job: done when `error` is None, else with that error for its iterator to raise."""
        self.stage = "done"
        self._events.put(_DONE if error is None else error)

    def __iter__(self) -> Iterator[audio.AudioChunk]:
        """Chunks as the worker makes them; raises the request's error, if any. Leaving early cancels."""
        yield from self.poll(None)  # with no timeout it never yields None

    def poll(self, seconds: float | None) -> Iterator[audio.AudioChunk | None]:
        """Chunks as the worker makes them, and None after each `seconds` without one, so that a caller waiting in
        a thread it cannot interrupt (a UI event) gets a chance to stop; raises the request's error, if any.
        Closing it before the end cancels the job."""
        finished = False
        try:
            while True:
                try:
                    event = self._events.get(timeout=seconds)
                except queue.Empty:
                    yield None
                    continue
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


@dataclass(eq=False)
class _Running:
    """A started job and its synthesis, which stays in the engine."""

    job: Job
    synthesis: Synthesis


class Engine:
    """Accepts synthesis requests from any thread and serves them on the model, one worker thread making all its
    calls."""

    def __init__(self, config: EngineConfig, library: VoiceLibrary | None = None):
        self.config = config
        self.library = library or VoiceLibrary(config.voices_dir)
        self.synthesizer = Synthesizer(config, self.library, status=self._set_status)
        self.status_message = "The model loads on first use."
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=config.queue_size)
        self._ids = itertools.count(1)
        self._running: list[_Running] = []
        self._waiting: Job | None = None  # taken from the queue, for another model than the running requests'
        self._model_lock = threading.RLock()  # held by the worker while it uses the model
        self._closing = False
        self.cancelled_jobs = 0
        self._worker = threading.Thread(target=self._serve, name="chatterbox-engine", daemon=True)
        self._worker.start()

    @property
    def request_batch(self) -> int:
        """How many requests the worker serves at once."""
        return self.synthesizer.acceleration.request_batch

    @property
    def requests_to_fill(self) -> int:
        """How many requests a client with many to make keeps in flight: one, as the worker serves them in order."""
        return 1

    def submit(self, request: SynthesisRequest) -> Job:
        """Queue `request`; raises Busy when the queue is full."""
        job = job_for(request, next(self._ids), self.synthesizer)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Busy(f"The studio is busy with {self.config.queue_size} queued requests; try again shortly.",
                       retry_after=max(5, 2 * self.config.queue_size)) from None
        return job

    def synthesize(self, request: SynthesisRequest) -> audio.AudioChunk:
        """Queue `request` and wait for the whole clip."""
        return self.submit(request).result()

    @contextmanager
    def using_model(self, name: str | None = None) -> Iterator[LoadedModel]:
        """The loaded variant `name` (the studio's default when None), loaded if need be; the worker leaves the
        model alone while the block runs. For callers in other threads (tests, the bench): never wait in the block
        for a request, which needs the worker."""
        with self._model_lock:
            yield self.synthesizer.model_for(name)

    def status(self) -> dict:
        return {
            **model_status(self.synthesizer),
            "queue_depth": self._queue.qsize(),
            "busy": bool(self._running),
            "running": len(self._running),
            "message": self.status_message,
            "cancelled_jobs": self.cancelled_jobs,
        }

    def close(self) -> None:
        """Stop the worker after the requests it is running; queued requests are cancelled."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.end(Cancelled("The studio is shutting down."))
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
                with self._model_lock:  # the status first: /health never shows no model with the old message
                    self._set_status(f"Model unloaded after {idle:g} s idle; it loads again on the next request.")
                    self.synthesizer.unload()

    def _serve(self) -> None:
        while self._admit():
            with self._model_lock:
                self._round()

    def _admit(self) -> bool:
        """Start queued jobs that can join the running ones, waiting for one when none runs; False once closing
        with nothing left to run."""
        while len(self._running) < self.request_batch:
            if self._closing:
                if self._waiting is not None:
                    self._waiting.end(Cancelled("The studio is shutting down."))
                    self._waiting = None
                break
            if self._waiting is not None:
                if self._running:
                    break
                job, self._waiting = self._waiting, None
            elif self._running:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
            else:
                job = self._next_job()
            if job is None:
                self._closing = True
            elif self._running and not self.synthesizer.same_model(job.request, self._running[0].synthesis):
                self._waiting = job
            else:
                with self._model_lock:
                    self._start(job)
        return bool(self._running) or not self._closing

    def _start(self, job: Job) -> None:
        if job.cancelled:
            self.cancelled_jobs += 1
            job.end(Cancelled("The request was cancelled before it started."))
            return
        job.stage, job.started = "running", time.perf_counter()
        job.activity = "preparing the voice" if self.synthesizer.has_loaded(job.request) else "loading the model"
        try:
            synthesis = self.synthesizer.prepare(job.request, lambda: job.cancelled)
        except Exception as error:
            self._fail(job, error)
            return
        self._running.insert(0, _Running(job, synthesis))

    def _round(self) -> None:
        """Sample the next chunks of as many running jobs as one batch holds, those that waited longest first,
        per sampling setting; then vocode each job's chunks, those that have no audio yet first."""
        for run in [run for run in self._running if run.job.cancelled]:
            self._cancel(run.job)
        chosen, room = [], self.synthesizer.acceleration.batch_prompts
        for run in self._running:
            size = len(run.synthesis.next_prompts())
            if not chosen or size <= room:
                chosen.append(run)
                room -= size
        self._running = [run for run in self._running if run not in chosen] + chosen
        by_sampling: dict = {}
        for run in chosen:
            run.job.activity = f"speaking {run.synthesis.next_chunks()}"
            by_sampling.setdefault(run.synthesis.sampling, []).append(run)
        sampled = []
        for runs in by_sampling.values():
            try:
                tokens = self.synthesizer.sample([run.synthesis for run in runs])
            except Exception as error:
                for run in runs:
                    self._fail(run.job, error)
                continue
            sampled += zip(runs, tokens)
        for run, tokens in sorted(sampled, key=lambda pair: pair[0].synthesis.done):
            self._vocode(run, tokens)

    def _vocode(self, run: _Running, tokens: list) -> None:
        if run.job.cancelled:
            self._cancel(run.job)
            return
        run.job.activity = f"vocoding {run.synthesis.next_chunks()}"
        try:
            for chunk in self.synthesizer.vocode(run.synthesis, tokens):
                run.job.deliver(chunk)
        except Cancelled:  # cancelled while its audio was being made
            self._cancel(run.job)
            return
        except Exception as error:
            self._fail(run.job, error)
            return
        if run.synthesis.finished:
            self._finish(run.job)

    def _cancel(self, job: Job) -> None:
        self.cancelled_jobs += 1
        self._finish(job, Cancelled("The request was cancelled."))

    def _fail(self, job: Job, error: Exception) -> None:
        """End `job` with an error its client can act on."""
        self._finish(job, client_error(error, self.synthesizer, job.id))

    def _finish(self, job: Job, error: EngineError | None = None) -> None:
        """End `job`, done or with `error`; it leaves the running jobs."""
        self._running = [run for run in self._running if run.job is not job]
        job.end(error)
        if job.started:
            log.info("job %d finished in %.1f s", job.id, time.perf_counter() - job.started)


def job_for(request: SynthesisRequest, job_id: int, synthesizer: Synthesizer, kind: type[Job] = Job) -> Job:
    """A `kind` of job for `request` (given a random seed when it has none), its chunks counted and the parameters
    and sound tags its model ignores noted; refuses a language the model does not speak."""
    if request.seed is None:
        request = request.with_seed(secrets.randbelow(MAX_SEED + 1))
    job = kind(request, job_id, len(chunk_texts(request, synthesizer.config.chunk_chars)))
    job.ignored_parameters = synthesizer.ignored_parameters(request)
    job.ignored_tags = synthesizer.ignored_tags(request)
    return job


def model_status(synthesizer: Synthesizer) -> dict:
    """The part of /health about the model: which is loaded, on which device, in which precision, voices cached."""
    model = synthesizer.model
    return {"model": model.spec.name if model else None, "device": synthesizer.device,
            "precision": (model.acceleration if model else synthesizer.acceleration).describe(),
            "cached_voices": len(synthesizer.cache)}


def client_error(error: Exception, synthesizer: Synthesizer, job_id: int) -> EngineError:
    """The error the client of job `job_id` is told for `error`, raised while serving it; running out of GPU memory
    frees the synthesizer's cached voices."""
    if isinstance(error, EngineError):
        return error
    if isinstance(error, torch.cuda.OutOfMemoryError):
        synthesizer.cache.clear()
        gc.collect()
        torch.cuda.empty_cache()
        log.error("Job %d ran out of GPU memory; cached voices were freed.", job_id)
        return SynthesisFailed("The GPU ran out of memory; try shorter text or close other GPU programs.")
    log.exception("Synthesis failed", exc_info=error)
    return SynthesisFailed(f"Synthesis failed unexpectedly ({error.__class__.__name__}: {error}).")
