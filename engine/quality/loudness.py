"""Even loudness: a clip brought to a target integrated loudness (EBU R128 / ITU-R BS.1770, measured by pyloudnorm),
never past a peak ceiling."""

from __future__ import annotations

import math

import numpy as np

PEAK_CEILING_DBFS = -1.0  # the gain stops where the highest sample would pass this
BLOCK_SECONDS = 0.4  # BS.1770's gating block: a shorter clip has no measurable loudness


def loudness(samples: np.ndarray, sample_rate: int) -> float:
    """The integrated loudness in LUFS; -inf for silence or a clip shorter than one gating block."""
    import pyloudnorm

    if len(samples) < BLOCK_SECONDS * sample_rate:
        return -math.inf
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(samples, dtype=np.float64)))


def normalize_loudness(samples: np.ndarray, sample_rate: int, target: float) -> np.ndarray:
    """`samples` at `target` LUFS, or as close as the peak ceiling allows; a silent or too short clip unchanged."""
    measured = loudness(samples, sample_rate)
    if not math.isfinite(measured):
        return samples
    gain = 10 ** ((target - measured) / 20)
    peak = float(np.max(np.abs(samples)))
    if peak > 0:
        gain = min(gain, 10 ** (PEAK_CEILING_DBFS / 20) / peak)
    return (samples * gain).astype(np.float32)
