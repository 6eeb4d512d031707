"""Reference clips: the one check of whether a clip can clone a voice, with hints that make it clone better.

Every way a clip comes in (saving a voice, a one-call clone, the desk, the CLI, the synthesis itself) asks
`inspect_reference`; each variant has its own minimum length (engine/models/variants.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidAudio

BEST_SECONDS = (5.0, 10.0)
SILENT_PEAK = 1e-3  # a clip whose loudest sample is below this holds no speech
FULL_SCALE = 0.999
FRAME_SECONDS = 0.02
QUIET_DB = -40.0  # frames this far below the loudest one count as silence


@dataclass(frozen=True)
class ReferenceReport:
    """How usable a reference clip is: problems refuse it, hints only advise."""

    seconds: float
    speech_seconds: float
    problems: tuple[str, ...]
    hints: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not self.problems

    def message(self) -> str:
        """The report as the desk shows it, a paragraph a line."""
        head = [f"Reference: {self.seconds:.1f} s, about {self.speech_seconds:.1f} s of sound."] if self.seconds else []
        lines = [*head, *(f"⚠ {p}" for p in self.problems), *(f"Tip: {h}" for h in self.hints)]
        if self.usable and not self.hints:
            lines.append("✓ A good length for cloning.")
        return "\n\n".join(lines)

    def raise_if_unusable(self) -> None:
        if self.problems:
            raise InvalidAudio(self.problems[0], "voice")


def frame_levels(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS level of each 20 ms frame."""
    size = int(sample_rate * FRAME_SECONDS)
    usable = len(samples) - len(samples) % size
    if usable == 0:
        return np.zeros(1, np.float32)
    return np.sqrt(np.mean(samples[:usable].reshape(-1, size) ** 2, axis=1))


def loud_frames(levels: np.ndarray) -> np.ndarray:
    """Indices of the frames that are not silence."""
    threshold = max(float(levels.max()) * 10 ** (QUIET_DB / 20), 1e-4)
    return np.flatnonzero(levels >= threshold)


def inspect_reference(samples: np.ndarray, sample_rate: int, min_seconds: float,
                      needed_by: str = "cloning") -> ReferenceReport:
    """Length, share of sound and clipping of a clip, as problems (refused) and hints; `needed_by` names what sets
    `min_seconds` (a variant, or the library)."""
    seconds = len(samples) / sample_rate
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    silent = peak < SILENT_PEAK
    speech = 0.0 if silent else len(loud_frames(frame_levels(samples, sample_rate))) * FRAME_SECONDS
    problems, hints = [], []
    if silent:
        problems.append("The clip is silent; record or upload someone speaking.")
    elif seconds < min_seconds:
        problems.append(f"The clip is too short ({seconds:.1f} s): {needed_by} needs at least {min_seconds:g} s of "
                        f"speech ({BEST_SECONDS[0]:g} to {BEST_SECONDS[1]:g} s is best).")
    elif seconds < BEST_SECONDS[0]:
        hints.append(f"Short clip: {BEST_SECONDS[0]:g} to {BEST_SECONDS[1]:g} s of clear speech clones best.")
    if not silent and float(np.mean(np.abs(samples) >= FULL_SCALE)) > 0.001:
        hints.append("The clip is clipped (distorted at full volume): record with lower input gain.")
    if seconds - speech > 2.0 or seconds > BEST_SECONDS[1] + 2:
        hints.append("Use ✂ Trim to cut the silence and keep the first 10 s.")
    return ReferenceReport(seconds, speech, tuple(problems), tuple(hints))


def check_reference(samples: np.ndarray, sample_rate: int, min_seconds: float, needed_by: str = "cloning") -> None:
    """Refuse a clip that is silent or shorter than `min_seconds`, saying what to change."""
    inspect_reference(samples, sample_rate, min_seconds, needed_by).raise_if_unusable()


def speech_span(samples: np.ndarray, sample_rate: int, pad_seconds: float) -> slice:
    """The part of a clip from its first to its last sound, with `pad_seconds` of margin; all of it when silent."""
    loud = loud_frames(frame_levels(samples, sample_rate))
    if not len(loud):
        return slice(0, len(samples))
    frame, pad = int(sample_rate * FRAME_SECONDS), int(pad_seconds * sample_rate)
    return slice(max(0, loud[0] * frame - pad), min(len(samples), (loud[-1] + 1) * frame + pad))
