"""A speech recognizer as a checker: it transcribes a take and scores the transcript against the text the take
should say (engine/quality/scoring.py).

The backend is faster-whisper (Whisper on CTranslate2, int8 on a CPU): measured against transformers' Whisper on
this studio's 2-core CPU it is several times faster (README, "Checking takes"). The model is a faster-whisper folder
(`--asr-model DIR`), or a model name (`base`, `small`, ... or a hub repository) downloaded on first use with a
progress bar. With neither (offline, nothing cached) the checks are off: one log line says why, nothing fails.

It runs in the thread that asks, never in the engine's worker: a take is transcribed after the engine has delivered
it, so the recognizer never holds the TTS queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import audio
from ..errors import InvalidRequest
from .scoring import character_error_rate

log = logging.getLogger(__name__)

OFF = "off"
WHISPER_SAMPLE_RATE = 16000
_MODEL_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]


@dataclass(frozen=True)
class Score:
    """What the recognizer heard in a take, and how far that is from the text (the character error rate)."""

    transcript: str
    cer: float
    seconds: float  # how long the recognizer took

    def passes(self, max_cer: float) -> bool:
        return self.cer <= max_cer


class Transcriber(Protocol):
    """Something that writes down what a clip says."""

    name: str

    def transcribe(self, samples: np.ndarray, sample_rate: int, language: str) -> str: ...


class SpeechChecker:
    """Scores takes with a transcriber."""

    def __init__(self, transcriber: Transcriber):
        self.transcriber = transcriber

    @property
    def name(self) -> str:
        return self.transcriber.name

    def score(self, samples: np.ndarray, sample_rate: int, text: str, language: str | None) -> Score:
        """The transcript of `samples` and its character error rate against `text` in `language` (None: English)."""
        started = time.perf_counter()
        heard = self.transcriber.transcribe(samples, sample_rate, language or "en")
        return Score(heard, round(character_error_rate(text, heard, language), 4),
                     round(time.perf_counter() - started, 3))


class FasterWhisper:
    """Whisper on CTranslate2: greedy decoding, no timestamps, no fallback temperatures, each take on its own."""

    def __init__(self, folder: Path, name: str, device: str = "cpu"):
        import ctranslate2
        from faster_whisper import WhisperModel

        cuda = device.startswith("cuda") or device == "auto" and ctranslate2.get_cuda_device_count() > 0
        self.name = name
        self.model = WhisperModel(str(folder), device="cuda" if cuda else "cpu",
                                  compute_type="int8_float16" if cuda else "int8",
                                  cpu_threads=min(4, os.cpu_count() or 1))

    def transcribe(self, samples: np.ndarray, sample_rate: int, language: str) -> str:
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        at_16k = audio.resample(np.asarray(samples, dtype=np.float32), sample_rate, WHISPER_SAMPLE_RATE)
        segments, _ = self.model.transcribe(
            at_16k, language=language if language in _LANGUAGE_CODES else None, beam_size=1, temperature=0.0,
            without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
        return "".join(segment.text for segment in segments).strip()


def model_folder(model: str) -> Path:
    """The faster-whisper folder `model` names: a local folder, else a model name or hub repository, downloaded
    (with a progress bar) unless the hub's cache holds it."""
    local = Path(model).expanduser()
    if local.is_dir():
        return local
    from faster_whisper.utils import _MODELS
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(_MODELS.get(model, model), allow_patterns=_MODEL_FILES))


class Recognizer:
    """The studio's checker, loaded on first use; `checker()` is None while checks are off, `reason` says why."""

    def __init__(self, model: str, device: str = "cpu"):
        self.model = model
        self.device = device
        self.reason = "" if model != OFF else "speech checks are turned off (--asr-model off)"
        self._checker: SpeechChecker | None = None
        self._tried = model == OFF
        self._lock = threading.Lock()

    def checker(self) -> SpeechChecker | None:
        """The checker, loading (or downloading) the model the first time; None when it cannot be had."""
        with self._lock:
            if not self._tried:
                self._tried = True
                self._checker = self._load()
            return self._checker

    def require(self) -> SpeechChecker:
        """The checker, or an error that says how to get one (for requests that cannot do without)."""
        checker = self.checker()
        if checker is None:
            raise InvalidRequest(f"Choosing among candidates needs a speech recognizer, and {self.reason}. Ask for "
                                 f"one candidate, or start the studio with --asr-model DIR (a faster-whisper folder).",
                                 "candidates")
        return checker

    def _load(self) -> SpeechChecker | None:
        try:
            folder = model_folder(self.model)
            log.info("Loading the speech recognizer %s", folder)
            checker = SpeechChecker(FasterWhisper(folder, Path(self.model).name or self.model, self.device))
        except (OSError, ValueError, RuntimeError) as error:  # the hub's errors are OSErrors; CTranslate2's Runtime
            self.reason = (f"the speech recognizer '{self.model}' could not be loaded ({type(error).__name__}: "
                           f"{str(error).splitlines()[0][:160]})")
            log.warning("Speech checks are off: %s. Connect once to download it, or give --asr-model DIR "
                        "(a faster-whisper folder).", self.reason)
            return None
        return checker


@lru_cache(maxsize=None)
def recognizer_for(model: str, device: str = "cpu") -> Recognizer:
    """The one Recognizer of this process for `model` on `device`, shared by every front door."""
    return Recognizer(model, device)
