"""Piper (LJSpeech-style) training sets spoken in one cloned voice: `metadata.csv` + `wavs/`."""

from .phrases import read_phrases
from .runner import DatasetRun, EngineSpeaker, HttpSpeaker

__all__ = ["DatasetRun", "EngineSpeaker", "HttpSpeaker", "read_phrases"]
