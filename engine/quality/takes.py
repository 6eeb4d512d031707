"""A take made with care, as a request asks: up to `candidates` takes of each chunk with the one whose transcript
scores best kept, then its non-speech edges trimmed (`trim`) and its loudness evened (`loudness`).

The candidates are whole requests, each with the next seed; they share the text, so they share its chunks, and
each chunk of the result comes from the candidate that said it best. Making more stops early once every chunk has
a perfect score. The desk drives `TakePicker` itself (to keep its progress bar and Stop); `make_take` is the same
for callers that just wait.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from .. import audio
from ..audio import AudioChunk
from ..request import MAX_SEED, SynthesisRequest
from .loudness import normalize_loudness
from .recognizer import Recognizer, Score, SpeechChecker
from .vad import trim_non_speech


@dataclass(frozen=True)
class PickedTake:
    """The finished clip, the chunks it was joined from (as made), the seed each came from, and each one's score
    (empty when nothing was scored)."""

    clip: AudioChunk
    chunks: tuple[AudioChunk, ...]
    seeds: tuple[int, ...]
    scores: tuple[Score, ...] = ()

    @property
    def worst(self) -> Score | None:
        """The score of the chunk that scored worst: the take is as good as that."""
        return max(self.scores, key=lambda score: score.cer, default=None)


def finish(clip: AudioChunk, request: SynthesisRequest) -> AudioChunk:
    """`clip` trimmed and made even in loudness as `request` asks."""
    samples = clip.samples
    if request.trim:
        samples = trim_non_speech(samples, clip.sample_rate).samples
    if request.loudness is not None:
        samples = normalize_loudness(samples, clip.sample_rate, request.loudness)
    return replace(clip, samples=samples)


def needs_whole_clip(request: SynthesisRequest) -> bool:
    """Whether the request's audio can only be sent once every chunk is made."""
    return request.candidates > 1 or request.trim or request.loudness is not None


class TakePicker:
    """Collects candidate takes of one request and keeps, for each chunk, the one that scores best."""

    def __init__(self, request: SynthesisRequest, checker: SpeechChecker | None):
        self.first_seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
        self.request = request
        self.checker = checker
        self.best: list[tuple[AudioChunk, int, Score | None]] = []

    def requests(self) -> list[SynthesisRequest]:
        """The candidates' requests, one per seed: seed, seed + 1, ..."""
        return [self.request.with_seed((self.first_seed + k) % (MAX_SEED + 1))
                for k in range(self.request.candidates)]

    def offer(self, seed: int, chunks: list[AudioChunk]) -> None:
        """One candidate's chunks: each replaces the best so far when it scores better."""
        for index, chunk in enumerate(chunks):
            score = None
            if self.checker is not None and self.request.candidates > 1:
                score = self.checker.score(chunk.samples, chunk.sample_rate, chunk.text, self.request.language)
            if index == len(self.best):
                self.best.append((chunk, seed, score))
            elif score is not None and score.cer < self.best[index][2].cer:
                self.best[index] = (chunk, seed, score)

    def settled(self) -> bool:
        """Whether no further candidate can do better: every chunk scored perfectly, or nothing is scored."""
        return bool(self.best) and all(score is None or score.cer == 0 for _, _, score in self.best)

    def picked(self) -> PickedTake:
        """The best chunks joined and finished as the request asks."""
        chunks = tuple(chunk for chunk, _, _ in self.best)
        scores = tuple(score for _, _, score in self.best if score is not None)
        return PickedTake(finish(audio.join(list(chunks)), self.request), chunks,
                          tuple(seed for _, seed, _ in self.best), scores)


def checker_for(request: SynthesisRequest, recognizer: Recognizer) -> SpeechChecker | None:
    """The checker a request needs: one when it asks for candidates (an error says how to get one if there is
    none), else none."""
    return recognizer.require() if request.candidates > 1 else None


def make_take(engine, request: SynthesisRequest, checker: SpeechChecker | None) -> PickedTake:
    """Every candidate of `request`, made through `engine` one after another and scored with `checker` as each is
    delivered (in this thread, outside the engine's worker), the best kept and finished."""
    picker = TakePicker(request, checker)
    for candidate in picker.requests():
        job = engine.submit(candidate)
        picker.offer(job.seed, list(job))
        if picker.settled():
            break
    return picker.picked()
