"""The desk's candidates: after the first take of a request that asks for more, the others, made one by one while
the page keeps its heartbeat (so Stop still works), each scored as it arrives; and how the result reads."""

from __future__ import annotations

from contextlib import closing
from typing import Iterator

from engine import Engine
from engine.audio import AudioChunk
from engine.quality import PickedTake, TakePicker

HEARTBEAT_SECONDS = 0.5


def other_candidates(engine: Engine, picker: TakePicker, first_seed: int,
                     first_chunks: list[AudioChunk]) -> Iterator[None]:
    """Offer the first take to `picker`, then make the other candidates until one is perfect or none is left,
    yielding None while waiting; closing this cancels the candidate in flight."""
    picker.offer(first_seed, first_chunks)
    for candidate in picker.requests()[1:]:
        if picker.settled():
            return
        job = engine.submit(candidate)
        chunks = []
        with closing(job.poll(HEARTBEAT_SECONDS)) as made:
            for chunk in made:
                if chunk is None:
                    yield None
                else:
                    chunks.append(chunk)
        yield None
        picker.offer(job.seed, chunks)


def describe(take: PickedTake, candidates: int) -> str:
    """What the desk says of a take chosen among candidates."""
    if take.worst is None:
        return ""
    seeds = sorted(set(take.seeds))
    return (f" · best of {candidates} candidates (seed{'s' if len(seeds) > 1 else ''} "
            f"{', '.join(map(str, seeds))}) · character error rate {take.worst.cer:.3f}, heard “{take.worst.transcript}”")
