"""Generating a dataset: each phrase spoken, trimmed to its speech, evened in loudness, checked (and, with a speech
recognizer, heard: a take whose transcript is too far from its text is made again), written to disk, then listed in
metadata.csv."""

from __future__ import annotations

import csv
import json
import os
import queue
import shutil
import statistics
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
from engine.quality import Score, SpeechChecker, normalize_loudness, trim_non_speech
from engine.text import has_words

RETAKES = 2  # takes after the first, each with a seed of its own, for a phrase whose take is refused
# The default --max-cer, reasoned (README, "Checking takes"): one missing five-letter word and its space in a
# 50-character phrase is 0.12, so a skipped word fails; Whisper base mishears about 5 % of the words of clean read
# English, mostly by a letter or two, so a clean take stays under it.
MAX_CER = 0.1
LOUDNESS = -23.0  # LUFS, EBU R128's programme level
SILENCE_THRESHOLD = 0.01
FAILURE_COLUMNS = ["name", "text", "reason", "transcript", "cer"]
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


def trim_to_speech(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cut what comes before the first and after the last speech (Silero VAD, as Piper's trainer does); a clip the
    detector hears no speech in is cut at its silences instead."""
    trimmed = trim_non_speech(samples, rate)
    return trimmed.samples if trimmed.found_speech else trim_silence(samples, rate)


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


@dataclass(frozen=True)
class Take:
    """One take of a phrase, finished as it would be stored; `refused` says why it may not be, `score` what the
    recognizer heard (None without one)."""

    clip: np.ndarray
    seed: int
    refused: str | None = None
    score: Score | None = None

    def better_than(self, other: "Take | None") -> bool:
        """Whether to keep this take rather than `other`: one that passes the clip checks beats one that does not,
        then the lower character error rate wins."""
        if other is None:
            return True
        if (self.score is None) != (other.score is None):
            return self.score is not None
        return self.score is not None and self.score.cer < other.score.cer


@dataclass
class Verification:
    """How takes are heard: the checker, the highest character error rate a take may have, and the retakes a phrase
    gets (RETAKES also without a checker: they make again a take that failed or was refused)."""

    checker: SpeechChecker | None = None
    max_cer: float = MAX_CER
    retakes: int = RETAKES
    keep_failed: bool = False  # list a phrase that never passes with its best take anyway
    language: str | None = None

    def describe(self) -> dict:
        return {"recognizer": self.checker.name if self.checker else None, "max_cer": self.max_cer,
                "retakes": self.retakes, "keep_failed": self.keep_failed}


@dataclass
class DatasetRun:
    """One output folder: knows what is done, writes what is new, records what failed."""

    out: Path
    voice_name: str
    sample_rate: int = 22050
    seed: int = 0
    verification: Verification = field(default_factory=Verification)
    loudness: float | None = LOUDNESS

    def __post_init__(self):
        self.out = Path(self.out)
        (self.out / "wavs").mkdir(parents=True, exist_ok=True)
        self._lock = Lock()

    @property
    def refused_dir(self) -> Path:
        """Where the best take of each phrase that never passed is kept, to be listened to."""
        return self.out / "refused"

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

    def seed_of(self, index: int, take: int) -> int:
        """Phrase `index`'s seed: seed + index for its first take, then 100000 further on for each retake."""
        return self.seed + index + take * 100_000

    def produce(self, speaker: Speaker, index: int, text: str, first: Take | None = None) -> tuple[float, str | None]:
        """Speak, check and store one phrase (after `first`, a take already made), making it again with the next
        seeds while its takes are refused; (seconds stored, why it failed)."""
        best, reason = first, first.refused if first else None
        for take_number in range(1 if first else 0, self.verification.retakes + 1):
            seed = self.seed_of(index, take_number)
            try:
                samples = speaker.speak(text, seed)
            except Cancelled:
                raise
            except (EngineError, RuntimeError, OSError) as error:
                reason = getattr(error, "message", str(error))
                continue
            take = self.judge(text, samples, seed)
            if take.refused is None:
                return self._store(self.name(index), text, take), None
            reason = take.refused
            if take.better_than(best):
                best = take
        return self._give_up(index, text, best, reason)

    def judge(self, text: str, samples: np.ndarray, seed: int) -> Take:
        """One take at the dataset's rate, trimmed to its speech and evened in loudness, checked and heard."""
        clip = trim_to_speech(audio.resample(samples, audio.MODEL_SAMPLE_RATE, self.sample_rate), self.sample_rate)
        if self.loudness is not None:
            clip = normalize_loudness(clip, self.sample_rate, self.loudness)
        if refused := check_clip(clip, self.sample_rate, text):
            return Take(clip, seed, refused)
        check = self.verification
        if check.checker is None:
            return Take(clip, seed)
        score = check.checker.score(clip, self.sample_rate, text, check.language)
        refused = None if score.passes(check.max_cer) else f"character error rate {score.cer:.2f} over {check.max_cer}"
        return Take(clip, seed, refused, score)

    def keep(self, index: int, text: str, samples: np.ndarray) -> Take:
        """Judge one phrase's take and store it if it passes."""
        take = self.judge(text, samples, self.seed_of(index, 0))
        if take.refused is None:
            self._store(self.name(index), text, take)
        return take

    def _give_up(self, index: int, text: str, best: Take | None, reason: str | None) -> tuple[float, str]:
        """A phrase none of whose takes passed: in failures.csv with its best take's transcript and score, that take
        in refused/ to be listened to (or, with keep_failed, listed after all); (seconds stored, reason)."""
        reason = (best.refused if best else None) or reason or "no take was made"
        self.record_failure(index, text, reason, best.score if best else None)
        if best is None or best.score is None:  # never heard: no take passed the clip checks
            return 0.0, reason
        if self.verification.keep_failed:
            return self._store(self.name(index), text, best), reason
        self.refused_dir.mkdir(exist_ok=True)
        self._write_wav(self.refused_dir / f"{self.name(index)}.wav", best.clip)
        return 0.0, reason

    def _write_wav(self, path: Path, clip: np.ndarray) -> None:
        partial = path.with_suffix(".partial")
        sf.write(partial, clip, self.sample_rate, subtype="PCM_16", format="WAV")
        os.replace(partial, path)

    def _store(self, name: str, text: str, take: Take) -> float:
        """Write the take's wav, its score, then its metadata line (so a listed item always has its wav); its
        seconds."""
        self._write_wav(self.out / "wavs" / f"{name}.wav", take.clip)
        with self._lock:
            if take.score is not None:
                self._append_row(self.out / "scores.csv", ["name", "cer", "transcript", "seed"],
                                 [name, take.score.cer, take.score.transcript, take.seed])
            with open(self.metadata, "a", encoding="utf-8", newline="\n") as handle:
                handle.write(f"{name}|{text}\n")
                handle.flush()
                os.fsync(handle.fileno())
        return len(take.clip) / self.sample_rate

    @staticmethod
    def _append_row(path: Path, header: list[str], row: list) -> None:
        new = not path.exists()
        with open(path, "a", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(header)
            writer.writerow(row)

    def record_failure(self, index: int, text: str, reason: str, score: Score | None = None) -> None:
        with self._lock:
            self._append_row(self.out / "failures.csv", FAILURE_COLUMNS,
                             [self.name(index), text, reason, score.transcript if score else "",
                              score.cer if score else ""])

    def pending(self, phrases: list[str]) -> list[tuple[int, str]]:
        """(index, text) of the phrases not yet in the folder; forgets the failures of earlier runs."""
        done = self.done()
        (self.out / "failures.csv").unlink(missing_ok=True)
        shutil.rmtree(self.refused_dir, ignore_errors=True)
        return [(i, p) for i, p in enumerate(phrases) if self.name(i) not in done]

    def attempt(self, speaker: Speaker, index: int, text: str, first: Take | None = None) -> float:
        """Produce one phrase (failures.csv records it if it cannot be made); its seconds of audio stored."""
        return self.produce(speaker, index, text, first)[0]

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
        first_takes: dict[int, Take] = {}
        try:
            spoken = speaker.speak_together([text for _, text in group], self.seed + group[0][0])
            for (index, text), samples in zip(group, spoken):
                take = first_takes[index] = self.keep(index, text, samples)
                if take.refused is None:
                    yield len(take.clip) / self.sample_rate
        except Cancelled:
            raise
        except (EngineError, RuntimeError, OSError):
            pass
        for index, text in group:
            if index not in first_takes or first_takes[index].refused is not None:
                yield self.attempt(speaker, index, text, first_takes.get(index))

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
                "total_audio_seconds": round(total, 2), "scores": score_distribution(list(self.scores().values()))}

    def scores(self) -> dict[str, dict]:
        """The recognizer's verdict on each listed item (name -> cer, transcript, seed): its latest row."""
        path, done = self.out / "scores.csv", self.done()
        if not path.exists():
            return {}
        with open(path, encoding="utf-8", newline="") as handle:
            return {row["name"]: row for row in csv.DictReader(handle) if row["name"] in done}

    def failures(self) -> list[dict]:
        path = self.out / "failures.csv"
        if not path.exists():
            return []
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    def describe(self, summary: dict, **details) -> None:
        info = {"sample_rate": self.sample_rate, "seed": self.seed, "voice": self.voice_name,
                "loudness_lufs": self.loudness, "trimmed_by": "silero-vad", **self.verification.describe(),
                **details, **summary}
        (self.out / "dataset.json").write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")



SCORE_BINS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


def score_distribution(rows: list[dict]) -> dict | None:
    """How the listed items' character error rates spread: count, mean, median, 90th percentile, worst, and how
    many fall at or under each of SCORE_BINS (None when nothing was heard)."""
    rates = sorted(float(row["cer"]) for row in rows)
    if not rates:
        return None
    return {"count": len(rates), "mean": round(statistics.fmean(rates), 4), "median": round(statistics.median(rates), 4),
            "p90": rates[min(len(rates) - 1, int(0.9 * len(rates)))], "max": rates[-1],
            "at_most": {f"{edge:g}": sum(rate <= edge for rate in rates) for edge in SCORE_BINS}}
