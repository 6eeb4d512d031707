"""The reference clip: how usable it is (length, silence, clipping) and a trim to its useful part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine import EngineError, audio

RATE = audio.MODEL_SAMPLE_RATE
BEST_SECONDS = (5.0, 10.0)
SILENT_PEAK = 1e-3
FULL_SCALE = 0.999
FRAME_SECONDS = 0.02
QUIET_DB = -40.0


@dataclass(frozen=True)
class ClipReport:
    """What the desk tells the user about a reference clip."""

    seconds: float
    speech_seconds: float
    problems: tuple[str, ...]
    hints: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not self.problems

    def message(self) -> str:
        head = f"Reference: {self.seconds:.1f} s, about {self.speech_seconds:.1f} s of sound."
        lines = [head, *(f"⚠ {p}" for p in self.problems), *(f"Tip: {h}" for h in self.hints)]
        if self.usable and not self.hints:
            lines.append("✓ A good length for cloning.")
        return "\n\n".join(lines)


def _frame_levels(samples: np.ndarray) -> np.ndarray:
    """RMS level of each 20 ms frame."""
    size = int(RATE * FRAME_SECONDS)
    usable = len(samples) - len(samples) % size
    if usable == 0:
        return np.zeros(1, np.float32)
    return np.sqrt(np.mean(samples[:usable].reshape(-1, size) ** 2, axis=1))


def _loud_frames(levels: np.ndarray) -> np.ndarray:
    threshold = max(float(levels.max()) * 10 ** (QUIET_DB / 20), 1e-4)
    return np.flatnonzero(levels >= threshold)


def load(path: str | Path, max_seconds: float = 60.0) -> np.ndarray:
    return audio.decode(Path(path).read_bytes(), RATE, max_seconds=max_seconds)


def inspect_clip(path: str | Path, min_seconds: float) -> ClipReport:
    """Length, share of sound and clipping of the clip at `path`, as problems (refused) and hints."""
    try:
        samples = load(path)
    except EngineError as error:
        return ClipReport(0.0, 0.0, (error.message,), ())
    seconds = len(samples) / RATE
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    loud = _loud_frames(_frame_levels(samples)) if peak >= SILENT_PEAK else np.zeros(0, int)
    speech = len(loud) * FRAME_SECONDS
    problems, hints = [], []
    if peak < SILENT_PEAK:
        problems.append("The clip is silent: record or upload someone speaking.")
    elif seconds < min_seconds:
        problems.append(f"The clip is too short ({seconds:.1f} s); give at least {min_seconds:.0f} s of speech.")
    elif seconds < BEST_SECONDS[0]:
        hints.append(f"Short clip: {BEST_SECONDS[0]:.0f} to {BEST_SECONDS[1]:.0f} s of clear speech clones best.")
    if peak >= SILENT_PEAK and float(np.mean(np.abs(samples) >= FULL_SCALE)) > 0.001:
        hints.append("The clip is clipped (distorted at full volume): record with lower input gain.")
    if seconds - speech > 2.0 or seconds > BEST_SECONDS[1] + 2:
        hints.append("Use ✂ Trim to cut the silence and keep the first 10 s.")
    return ClipReport(seconds, speech, tuple(problems), tuple(hints))


def trim_clip(path: str | Path, out_dir: Path, max_seconds: float = BEST_SECONDS[1], pad: float = 0.1) -> Path:
    """A wav copy of the clip in `out_dir`, without leading and trailing silence, at most `max_seconds` long."""
    samples = load(path)
    loud = _loud_frames(_frame_levels(samples))
    frame = int(RATE * FRAME_SECONDS)
    if len(loud):
        start = max(0, loud[0] * frame - int(pad * RATE))
        end = min(len(samples), (loud[-1] + 1) * frame + int(pad * RATE))
        samples = samples[start:end]
    samples = samples[: int(max_seconds * RATE)]
    out = Path(out_dir) / f"{Path(path).stem}-trimmed.wav"
    sf.write(out, samples, RATE, subtype="PCM_16")
    return out
