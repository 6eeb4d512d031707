"""The reference clip in the desk: the engine's check of a clip file, and a trim to its useful part."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from engine import EngineError, audio
from engine.reference import BEST_SECONDS, ReferenceReport, inspect_reference, speech_span

RATE = audio.MODEL_SAMPLE_RATE


def load(path: str | Path, max_seconds: float = 60.0):
    return audio.decode(Path(path).read_bytes(), RATE, max_seconds=max_seconds)


def inspect_clip(path: str | Path, min_seconds: float, needed_by: str = "cloning") -> ReferenceReport:
    """The engine's report on the clip at `path` (an unreadable file is its one problem)."""
    try:
        samples = load(path)
    except EngineError as error:
        return ReferenceReport(0.0, 0.0, (error.message,), ())
    return inspect_reference(samples, RATE, min_seconds, needed_by)


def trim_clip(path: str | Path, out_dir: Path, max_seconds: float = BEST_SECONDS[1], pad: float = 0.1) -> Path:
    """A wav copy of the clip in `out_dir`, without leading and trailing silence, at most `max_seconds` long."""
    samples = load(path)
    samples = samples[speech_span(samples, RATE, pad)][: int(max_seconds * RATE)]
    out = Path(out_dir) / f"{Path(path).stem}-trimmed.wav"
    sf.write(out, samples, RATE, subtype="PCM_16")
    return out
