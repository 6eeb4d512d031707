"""Generating a dataset: each phrase spoken, checked, written to disk, then listed in metadata.csv."""

from __future__ import annotations

import csv
import json
import os
import queue
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from threading import Lock
from typing import Callable, Iterator, Protocol

import numpy as np
import soundfile as sf

from engine import Ask, Cancelled, EngineError, Job, RequestComposer, SynthesisRequest, audio
from engine.placement import Placement
from engine.text import has_words

RETRIES = 2
SILENCE_THRESHOLD = 0.01
PHRASES_PER_REQUEST = 17  # the engine takes the first alone, then the rest in groups of four


class Speaker(Protocol):
    """Something that speaks one phrase with one seed and returns 24 kHz float samples."""

    def speak(self, text: str, seed: int) -> np.ndarray: ...


@dataclass
class EngineSpeaker:
    """Speaks through the studio's engine (in this process, or its replicas on Ray), each phrase asked as `ask` asks
    (its text aside): the voice's conditionals are derived once. `stop()` cancels the requests in flight and refuses
    the next."""

    engine: Placement
    composer: RequestComposer
    ask: Ask
    _jobs: weakref.WeakSet = field(default_factory=weakref.WeakSet, init=False, repr=False)
    _stopped: bool = field(default=False, init=False, repr=False)

    def request(self, text: str, seed: int) -> SynthesisRequest:
        return self.composer.compose(replace(self.ask, text=text, values={**self.ask.values, "seed": seed}))

    def speak(self, text: str, seed: int) -> np.ndarray:
        return self._submit(self.request(text, seed)).result().samples

    @property
    def requests_in_flight(self) -> int:
        """How many requests to keep in flight to keep the engine busy (one per batch slot of every Ray replica)."""
        return self.engine.requests_to_fill

    def can_share_a_request(self, text: str) -> bool:
        return has_words(text) and len(text) <= self.engine.config.chunk_chars

    def speak_together(self, texts: list[str], first_seed: int) -> Iterator[np.ndarray]:
        """Each phrase's audio as it is made, phrase k with seed first_seed + k, all in one request: the engine
        decodes and vocodes them in groups, which is several times faster than one request each. (Each phrase is
        at most a chunk long, so their sum may pass the input limit a single text has.)"""
        together = replace(self.request(texts[0], first_seed), text="\n\n".join(texts), separate_phrases=True)
        for chunk in self._submit(together):
            yield chunk.samples

    def stop(self) -> None:
        """Cancel the requests in flight (the engine ends each within a token) and refuse any other."""
        self._stopped = True
        for job in list(self._jobs):
            job.cancel()

    def _submit(self, request: SynthesisRequest) -> Job:
        if self._stopped:
            raise Cancelled("The dataset was stopped.")
        job = self.engine.submit(request)
        self._jobs.add(job)
        if self._stopped:  # stopped while it was being queued
            job.cancel()
        return job


@dataclass
class HttpSpeaker:
    """Speaks through a running studio's `/v1/audio/speech`, waiting out 429 and 503 as the server asks."""

    url: str
    voice: str
    parameters: dict = field(default_factory=dict)
    api_key: str | None = None
    max_waits: int = 20

    def speak(self, text: str, seed: int) -> np.ndarray:
        import requests

        body = {"model": "chatterbox", "input": text, "voice": self.voice, "response_format": "wav", "seed": seed,
                **self.parameters}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        for _ in range(self.max_waits):
            response = requests.post(f"{self.url.rstrip('/')}/v1/audio/speech", json=body, headers=headers, timeout=600)
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("Retry-After", 5)))
                continue
            if not response.ok:
                raise RuntimeError(f"HTTP {response.status_code}: {_error_message(response)}")
            return audio.decode(response.content, audio.MODEL_SAMPLE_RATE)
        raise RuntimeError("The server stayed busy; try fewer --workers.")


def shared_requests(todo: list[tuple[int, str]], shareable) -> tuple[list[list[tuple[int, str]]], list[tuple[int, str]]]:
    """Runs of consecutive phrases that can share a request (so phrase N keeps seed + N), at most
    PHRASES_PER_REQUEST each; and the phrases left to make alone."""
    groups: list[list[tuple[int, str]]] = []
    alone = []
    for index, text in todo:
        if not shareable(text):
            alone.append((index, text))
        elif groups and groups[-1][-1][0] == index - 1 and len(groups[-1]) < PHRASES_PER_REQUEST:
            groups[-1].append((index, text))
        else:
            groups.append([(index, text)])
    return groups, alone


@dataclass(frozen=True)
class _Raised:
    """A task's error, handed to the thread that reads the results."""

    error: BaseException


_TASK_DONE = object()


def in_parallel(tasks: list[Callable[[], Iterator[float]]], workers: int) -> Iterator[float]:
    """The items of every task's iterator as they come, `workers` tasks at a time, in their order; a task's error is
    raised here. Closing it lets no further task start."""
    results: queue.Queue = queue.Queue()
    stopping = threading.Event()

    def run(task: Callable[[], Iterator[float]]) -> None:
        try:
            for item in task() if not stopping.is_set() else ():
                results.put(item)
        except BaseException as error:
            results.put(_Raised(error))
        finally:
            results.put(_TASK_DONE)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dataset")
    for task in tasks:
        pool.submit(run, task)
    try:
        for _ in tasks:
            while (item := results.get()) is not _TASK_DONE:
                if isinstance(item, _Raised):
                    raise item.error
                yield item
    finally:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)


def _error_message(response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def trim_silence(samples: np.ndarray, rate: int, threshold: float = SILENCE_THRESHOLD, keep: float = 0.05) -> np.ndarray:
    """Cut leading and trailing silence, keeping `keep` seconds of margin."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return samples[:0]
    margin = int(keep * rate)
    return samples[max(0, loud[0] - margin): loud[-1] + margin + 1]


def check_clip(samples: np.ndarray, rate: int, text: str) -> str | None:
    """Why a clip is unusable (empty, silent, implausibly long or short for its text), or None."""
    seconds = len(samples) / rate
    if seconds == 0:
        return "empty or silent audio"
    if seconds < min(0.2, len(text) / 60):
        return f"{seconds:.2f} s is too short for {len(text)} characters"
    if seconds > 2 + len(text) / 3:
        return f"{seconds:.1f} s is too long for {len(text)} characters"
    return None


@dataclass
class DatasetRun:
    """One output folder: knows what is done, writes what is new, records what failed."""

    out: Path
    voice_name: str
    sample_rate: int = 22050
    seed: int = 0

    def __post_init__(self):
        self.out = Path(self.out)
        (self.out / "wavs").mkdir(parents=True, exist_ok=True)
        self._lock = Lock()

    @property
    def metadata(self) -> Path:
        return self.out / "metadata.csv"

    def name(self, index: int) -> str:
        return f"{self.voice_name}_{index + 1:05d}"

    def done(self) -> dict[str, str]:
        """Items already listed in metadata.csv (their wavs exist): name -> text."""
        if not self.metadata.exists():
            return {}
        items = {}
        for line in self.metadata.read_text(encoding="utf-8").splitlines():
            name, sep, text = line.partition("|")
            if sep and (self.out / "wavs" / f"{name}.wav").exists():
                items[name] = text
        return items

    def produce(self, speaker: Speaker, index: int, text: str) -> tuple[float, str | None]:
        """Speak, check and store one phrase, retrying with the next seeds; (seconds, failure reason)."""
        reason = None
        for attempt in range(RETRIES + 1):
            try:
                samples = speaker.speak(text, self.seed + index + attempt * 100_000)
            except Cancelled:
                raise
            except (EngineError, RuntimeError, OSError) as error:
                reason = getattr(error, "message", str(error))
                continue
            seconds, reason = self.keep(index, text, samples)
            if reason is None:
                return seconds, None
        return 0.0, reason

    def keep(self, index: int, text: str, samples: np.ndarray) -> tuple[float, str | None]:
        """Trim, check and store one phrase's audio; (seconds, why it was refused)."""
        clip = trim_silence(audio.resample(samples, audio.MODEL_SAMPLE_RATE, self.sample_rate), self.sample_rate)
        reason = check_clip(clip, self.sample_rate, text)
        if reason is None:
            self._store(self.name(index), text, clip)
        return len(clip) / self.sample_rate, reason

    def _store(self, name: str, text: str, clip: np.ndarray) -> None:
        wav = self.out / "wavs" / f"{name}.wav"
        partial = wav.with_suffix(".partial")
        sf.write(partial, clip, self.sample_rate, subtype="PCM_16", format="WAV")
        os.replace(partial, wav)
        with self._lock, open(self.metadata, "a", encoding="utf-8", newline="\n") as handle:
            handle.write(f"{name}|{text}\n")
            handle.flush()
            os.fsync(handle.fileno())

    def record_failure(self, index: int, text: str, reason: str) -> None:
        new = not (self.out / "failures.csv").exists()
        with self._lock, open(self.out / "failures.csv", "a", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["name", "text", "reason"])
            writer.writerow([self.name(index), text, reason])

    def pending(self, phrases: list[str]) -> list[tuple[int, str]]:
        """(index, text) of the phrases not yet in the folder; forgets the failures of earlier runs."""
        done = self.done()
        (self.out / "failures.csv").unlink(missing_ok=True)
        return [(i, p) for i, p in enumerate(phrases) if self.name(i) not in done]

    def attempt(self, speaker: Speaker, index: int, text: str) -> float:
        """Produce one phrase, recording it in failures.csv if it cannot be made; its seconds of audio."""
        seconds, reason = self.produce(speaker, index, text)
        if reason:
            self.record_failure(index, text, reason)
        return seconds

    def made(self, speaker: Speaker, todo: list[tuple[int, str]], workers: int = 1) -> Iterator[float]:
        """Make the phrases of `todo`, yielding each one's seconds of audio (0 when it failed) as it is done: those
        that can share a request share one (the engine then decodes and vocodes them in groups), the rest alone;
        `workers` requests at a time, or as many as the engine needs in flight to keep busy."""
        if isinstance(speaker, EngineSpeaker):
            groups, alone = shared_requests(todo, speaker.can_share_a_request)
            workers = max(workers, speaker.requests_in_flight)
        else:
            groups, alone = [], todo
        tasks = [partial(self._made_together, speaker, group) for group in groups] + \
                [partial(self._attempted, speaker, index, text) for index, text in alone]
        if workers <= 1:
            for task in tasks:
                yield from task()
        else:
            yield from in_parallel(tasks, workers)

    def _attempted(self, speaker: Speaker, index: int, text: str) -> Iterator[float]:
        yield self.attempt(speaker, index, text)

    def _made_together(self, speaker: EngineSpeaker, group: list[tuple[int, str]]) -> Iterator[float]:
        """Consecutive phrases in one request, each stored the moment it is made; one that fails its check, or that
        the request did not reach, is then made alone."""
        stored = set()
        try:
            spoken = speaker.speak_together([text for _, text in group], self.seed + group[0][0])
            for (index, text), samples in zip(group, spoken):
                seconds, reason = self.keep(index, text, samples)
                if reason is None:
                    stored.add(index)
                    yield seconds
        except Cancelled:
            raise
        except (EngineError, RuntimeError, OSError):
            pass
        for index, text in group:
            if index not in stored:
                yield self.attempt(speaker, index, text)

    def run(self, speaker: Speaker, phrases: list[str], workers: int = 1, progress=None) -> dict:
        """Produce every phrase not yet done, with `workers` requests at a time; returns the summary also written
        to dataset.json."""
        todo = self.pending(phrases)
        skipped = len(phrases) - len(todo)
        seconds = 0.0
        for done in self.made(speaker, todo, workers):
            seconds += done
            if progress:
                progress(1)
        return self.summary(skipped, seconds)

    def summary(self, skipped_done: int, new_seconds: float) -> dict:
        done = self.done()
        total = sum(sf.info(str(self.out / "wavs" / f"{name}.wav")).duration for name in done)
        return {"items": len(done), "new_items": len(done) - skipped_done, "skipped_done": skipped_done,
                "failures": len(self.failures()), "new_audio_seconds": round(new_seconds, 2),
                "total_audio_seconds": round(total, 2)}

    def failures(self) -> list[dict]:
        path = self.out / "failures.csv"
        if not path.exists():
            return []
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    def describe(self, summary: dict, **details) -> None:
        info = {"sample_rate": self.sample_rate, "seed": self.seed, "voice": self.voice_name, **details, **summary}
        (self.out / "dataset.json").write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")

