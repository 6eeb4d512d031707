"""Catching bad takes: a speech recognizer's round trip, candidates, clean edges and even loudness."""

from .loudness import loudness, normalize_loudness
from .recognizer import OFF, Recognizer, Score, SpeechChecker, Transcriber, recognizer_for
from .scoring import character_error_rate, normalize
from .takes import PickedTake, TakePicker, checker_for, finish, make_take, needs_whole_clip
from .vad import Trimmed, trim_non_speech

__all__ = [
    "OFF", "PickedTake", "Recognizer", "Score", "SpeechChecker", "TakePicker", "Transcriber",
    "checker_for",
    "Trimmed", "character_error_rate", "finish", "loudness", "make_take", "needs_whole_clip", "normalize",
    "normalize_loudness", "recognizer_for", "trim_non_speech",
]
