"""Leading and trailing non-speech (breaths, noise, a mumble after the last word) cut by Silero's voice activity
detector, as Piper's trainer cuts its clips. The model ships inside the `silero-vad` package: this works offline."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import audio

VAD_SAMPLE_RATE = 16000
MARGIN_SECONDS = 0.1  # kept before the first and after the last speech, so no word's edge is cut
_lock = threading.Lock()  # the model keeps state between windows: one clip at a time


@dataclass(frozen=True)
class Trimmed:
    """A clip with its non-speech edges cut; `found_speech` False: the detector heard none and the clip is as made."""

    samples: np.ndarray
    found_speech: bool
    cut_seconds: float


@lru_cache(maxsize=1)
def _silero():
    """The `silero_vad` package, imported without its side effect: its import sets torch to 1 CPU thread for the
    whole process, which would slow the speech model and change its float sums between threads."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


@lru_cache(maxsize=1)
def _model():
    return _silero().load_silero_vad()  # TorchScript, on the CPU


def speech_span(samples: np.ndarray, sample_rate: int) -> tuple[int, int] | None:
    """(first, last) sample of speech in `samples`, or None when the detector hears none."""
    import torch

    if len(samples) == 0:
        return None
    at_16k = audio.resample(np.asarray(samples, dtype=np.float32), sample_rate, VAD_SAMPLE_RATE)
    with _lock, torch.inference_mode():
        spans = _silero().get_speech_timestamps(torch.from_numpy(at_16k), _model(), sampling_rate=VAD_SAMPLE_RATE)
    if not spans:
        return None
    scale = sample_rate / VAD_SAMPLE_RATE
    return int(spans[0]["start"] * scale), int(spans[-1]["end"] * scale)


def trim_non_speech(samples: np.ndarray, sample_rate: int, margin: float = MARGIN_SECONDS) -> Trimmed:
    """`samples` from just before the first speech to just after the last, with short fades at the cuts."""
    span = speech_span(samples, sample_rate)
    if span is None:
        return Trimmed(samples, False, 0.0)
    keep = int(margin * sample_rate)
    start, end = max(0, span[0] - keep), min(len(samples), span[1] + keep)
    kept = audio.fade_edges(samples[start:end], sample_rate)
    return Trimmed(kept, True, (len(samples) - len(kept)) / sample_rate)
