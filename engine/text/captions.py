"""Captions timed to the audio a synthesis actually made: a cue for each chunk's speech, laid end to end.

A request made with `captions` has one sentence (or one clause-cut part of a long one) per chunk, so a cue is one
sentence and its times are where that sentence's samples start and end in the clip: the pauses, the speed stretch
and the joins are in them because they are in the samples. Nothing is estimated from character counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..audio import AudioChunk
from ..errors import InvalidRequest


@dataclass(frozen=True)
class Cue:
    """One caption: its text, shown from `start` to `end` seconds into the clip."""

    start: float
    end: float
    text: str

    def as_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}


class CueClock:
    """Turns a synthesis' chunks, in order, into cues: it keeps the time at which the next chunk starts."""

    def __init__(self):
        self.elapsed = 0.0

    def cue(self, chunk: AudioChunk) -> Cue:
        start, end = chunk.speech
        cue = Cue(self.elapsed + start, self.elapsed + end, chunk.text)
        self.elapsed += chunk.duration
        return cue


def cues_of(chunks: Iterable[AudioChunk]) -> list[Cue]:
    clock = CueClock()
    return [clock.cue(chunk) for chunk in chunks]


def _timestamp(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal}{rest % 1000:03d}"


def srt(cues: list[Cue]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    return "".join(f"{number}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{c.text}\n\n"
                   for number, c in enumerate(cues, 1))


def webvtt(cues: list[Cue]) -> str:
    """WebVTT: the `WEBVTT` header, then cues with `HH:MM:SS.mmm --> HH:MM:SS.mmm`."""
    return "WEBVTT\n\n" + "".join(f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{c.text}\n\n"
                                  for c in cues)


CAPTION_FORMATS: dict[str, Callable[[list[Cue]], str]] = {"srt": srt, "vtt": webvtt}


def caption_format(path: str) -> str:
    """The caption format a file name asks for, by its extension; a clear error for another."""
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if extension not in CAPTION_FORMATS:
        raise InvalidRequest(f"Captions are written as .srt or .vtt; '{path}' is neither. Name the file "
                             f"captions.srt or captions.vtt.", "captions")
    return extension
