"""The Chatterbox engine: models, synthesis pipeline, voices. Imports no web framework."""

from .decoding.acceleration import PRECISIONS
from .audio import AudioChunk
from .compose import Ask, RequestComposer
from .config import EngineConfig
from .engine import Engine, Job
from .errors import (Busy, Cancelled, EngineError, InvalidAudio, InvalidRequest, ModelUnavailable, NotFound,
                     SynthesisFailed, TextTooLong)
from .request import LANGUAGES, MODELS, PARAMETER_RANGES, SynthesisRequest, Voice
from .voices import SavedVoice, VoiceLibrary

__all__ = [
    "Ask", "AudioChunk", "Busy", "Cancelled", "Engine", "EngineConfig", "EngineError", "InvalidAudio", "InvalidRequest",
    "Job", "LANGUAGES", "MODELS", "ModelUnavailable", "NotFound", "PARAMETER_RANGES", "PRECISIONS", "RequestComposer",
    "SavedVoice", "SynthesisFailed", "SynthesisRequest", "TextTooLong", "Voice", "VoiceLibrary",
]
