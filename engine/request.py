"""The values that flow into the engine: a synthesis request and its voice."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from .errors import InvalidRequest
from .text import check_speakable, normalize

from .models.variants import LANGUAGES, MODELS

MAX_SEED = 2**32 - 1
MAX_CANDIDATES = 8
LOUDNESS_RANGE = (-70.0, -5.0)  # LUFS a request may ask for


@dataclass(frozen=True)
class Voice:
    """Who speaks: a reference clip (bytes), a library voice id, or the model's built-in voice."""

    clip: bytes | None = None
    library_id: str | None = None

    @classmethod
    def builtin(cls) -> "Voice":
        return cls()

    @classmethod
    def from_file(cls, path: str | Path) -> "Voice":
        path = Path(path)
        if not path.is_file():
            raise InvalidRequest(f"Reference clip '{path}' does not exist; give the path of an audio file.", "voice")
        return cls(clip=path.read_bytes())

    @property
    def is_builtin(self) -> bool:
        return self.clip is None and self.library_id is None

    def describe(self) -> str:
        if self.library_id:
            return f"library voice '{self.library_id}'"
        return "reference clip" if self.clip is not None else "built-in voice"


# name: (minimum, maximum, default); the defaults are the English model's, see `SynthesisRequest.with_defaults`
PARAMETER_RANGES: dict[str, tuple[float, float, float]] = {
    "exaggeration": (0.0, 2.0, 0.5),
    "cfg_weight": (0.0, 1.0, 0.5),
    "temperature": (0.05, 5.0, 0.8),
    "top_p": (0.0, 1.0, 1.0),
    "min_p": (0.0, 1.0, 0.05),
    "repetition_penalty": (1.0, 2.0, 1.2),
    "speed": (0.25, 4.0, 1.0),
}


@dataclass(frozen=True)
class SynthesisRequest:
    """One thing to say, in one voice, with the model's sampling parameters."""

    text: str
    voice: Voice = field(default_factory=Voice.builtin)
    model: str | None = None
    language: str | None = None
    exaggeration: float | None = None  # None: the model's own default
    cfg_weight: float | None = None
    temperature: float | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    speed: float = PARAMETER_RANGES["speed"][2]
    seed: int | None = None
    max_tokens_per_chunk: int | None = None
    max_chars_per_chunk: int | None = None  # None: the engine's chunk length (EngineConfig.chunk_chars)
    separate_phrases: bool = False  # each paragraph a phrase of its own: one chunk, no pause after it
    captions: bool = False  # each sentence a chunk of its own, so each has audio of its own to time a caption by
    # what is done after synthesis (engine/quality/takes.py): the best of `candidates` takes of each chunk, by
    # their transcripts; leading and trailing non-speech trimmed; loudness evened to this many LUFS
    candidates: int = 1
    trim: bool = False
    loudness: float | None = None

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise InvalidRequest("Text must be a string.", "text")
        check_speakable(normalize(self.text))
        for name, (low, high, _) in PARAMETER_RANGES.items():
            value = getattr(self, name)
            if value is None and name != "speed":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidRequest(f"{name} must be a number between {low} and {high}.", name)
            if not low <= value <= high:
                raise InvalidRequest(f"{name} is {value}; it must be between {low} and {high}.", name)
        if self.model is not None and self.model not in MODELS:
            raise InvalidRequest(f"Unknown model '{self.model}'; choose one of {', '.join(MODELS)}.", "model")
        if self.language is not None and self.language.lower() not in LANGUAGES:
            raise InvalidRequest(
                f"Unsupported language '{self.language}'; use one of {', '.join(sorted(LANGUAGES))}.", "language"
            )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed <= MAX_SEED):
            raise InvalidRequest(f"seed must be a whole number from 0 to {MAX_SEED}.", "seed")
        self._check_finishing()
        if self.max_tokens_per_chunk is not None and not 1 <= self.max_tokens_per_chunk <= 1000:
            raise InvalidRequest("max_tokens_per_chunk must be between 1 and 1000.", "max_tokens_per_chunk")
        if self.max_chars_per_chunk is not None and not 1 <= self.max_chars_per_chunk <= 1000:
            raise InvalidRequest("max_chars_per_chunk must be between 1 and 1000.", "max_chars_per_chunk")

    def _check_finishing(self) -> None:
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) \
                or not 1 <= self.candidates <= MAX_CANDIDATES:
            raise InvalidRequest(f"candidates must be a whole number from 1 to {MAX_CANDIDATES}.", "candidates")
        if not isinstance(self.trim, bool):
            raise InvalidRequest("trim must be true or false.", "trim")
        low, high = LOUDNESS_RANGE
        if self.loudness is not None and (isinstance(self.loudness, bool) or not isinstance(self.loudness, (int, float))
                                          or not low <= self.loudness <= high):
            raise InvalidRequest(f"loudness must be a number of LUFS from {low:g} to {high:g} (-23 is EBU R128's "
                                 f"broadcast level, -16 a podcast's).", "loudness")

    def with_seed(self, seed: int) -> "SynthesisRequest":
        return replace(self, seed=seed)

    def with_defaults(self, model_defaults: Mapping[str, float]) -> "SynthesisRequest":
        """The request with every parameter it leaves unset taken from `model_defaults`, else from PARAMETER_RANGES."""
        unset = {name: model_defaults.get(name, default) for name, (_, _, default) in PARAMETER_RANGES.items()
                 if getattr(self, name) is None}
        return replace(self, **unset)

    def parameters(self) -> dict:
        """The sampling parameters as a plain dict (for history, datasets and logs); None: the model's default."""
        return {name: getattr(self, name) for name in (*PARAMETER_RANGES, "seed", "language", "model")}
