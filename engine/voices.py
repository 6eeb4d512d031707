"""Saved voices (the library) and the cache of speaker conditionals derived from clips."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import InvalidRequest, NotFound

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".webm")
_UNSAFE = re.compile(r"[^\w.\-]+")
TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class SavedVoice:
    """A library voice: its id is its file name, as clients of Chatterbox servers expect."""

    id: str
    name: str
    language: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    expires_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sanitize_id(filename: str) -> str:
    """A safe file name from what a user uploaded: no folders, no odd characters, an audio suffix."""
    base = unicodedata.normalize("NFKC", filename.replace("\\", "/").rsplit("/", 1)[-1]).replace("\x00", "")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, "wav"
    suffix = "." + suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        suffix = ".wav"
    stem = _UNSAFE.sub("_", stem).strip("._-")[:80] or "voice"
    return stem + suffix


def check_id(voice_id: str) -> str:
    """Refuse ids that are not plain library file names (no paths, NUL bytes or look-alikes)."""
    if not isinstance(voice_id, str) or not voice_id or sanitize_id(voice_id) != voice_id:
        raise NotFound(f"There is no library voice '{voice_id}'; list voices with GET /api/speakers.", "voice")
    return voice_id


class VoiceLibrary:
    """Voices saved on disk: `<id>` holds the clip and `<id>.json` its details, both written atomically."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(f"{TEMP_PREFIX}*"):  # from a process killed mid-write
            leftover.unlink(missing_ok=True)
        self._clock = clock
        self._lock = threading.Lock()

    def list(self) -> list[SavedVoice]:
        self._expire()
        voices = []
        for meta in sorted(self.directory.glob("*.json")):
            voice = self._read(meta)
            if voice and (self.directory / voice.id).exists():
                voices.append(voice)
        return voices

    def get(self, voice_id: str) -> SavedVoice:
        check_id(voice_id)
        voice = self._read(self.directory / f"{voice_id}.json")
        if voice is None or not (self.directory / voice_id).exists() or self._expired(voice):
            raise NotFound(f"There is no library voice '{voice_id}'; list voices with GET /api/speakers.", "voice")
        return voice

    def clip(self, voice_id: str) -> bytes:
        """The voice's clip; NotFound also when the voice is deleted between the lookup and the read."""
        self.get(voice_id)
        try:
            return (self.directory / voice_id).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"There is no library voice '{voice_id}'; it was just deleted.", "voice") from None

    def with_clip(self, clip: bytes) -> SavedVoice | None:
        """The saved voice whose clip is exactly `clip`, if there is one."""
        key = clip_key(clip)
        for voice in self.list():
            try:
                if clip_key((self.directory / voice.id).read_bytes()) == key:
                    return voice
            except FileNotFoundError:  # deleted meanwhile
                continue
        return None

    def add(self, filename: str, clip: bytes, name: str | None = None, language: str | None = None,
            settings: dict | None = None, ttl_seconds: float | None = None) -> SavedVoice:
        """Save a clip under a unique id made from `filename`; the voice appears whole or not at all."""
        if not clip:
            raise InvalidRequest("The voice clip is empty; upload an audio file.", "file")
        wanted = sanitize_id(filename)
        with self._lock:
            voice_id = self._unique(wanted)
            now = self._clock()
            voice = SavedVoice(voice_id, (name or Path(voice_id).stem).strip()[:120] or voice_id, language,
                               dict(settings or {}), now, None if ttl_seconds is None else now + ttl_seconds)
            _write_atomic(self.directory / voice_id, clip)
            _write_atomic(self.directory / f"{voice_id}.json", json.dumps(voice.to_dict()).encode())
        return voice

    def update(self, voice_id: str, name: str | None = None, settings: dict | None = None) -> SavedVoice:
        with self._lock:
            voice = self.get(voice_id)
            changed = SavedVoice(voice.id, (name or voice.name).strip()[:120], voice.language,
                                 voice.settings if settings is None else dict(settings), voice.created_at,
                                 voice.expires_at)
            _write_atomic(self.directory / f"{voice_id}.json", json.dumps(changed.to_dict()).encode())
        return changed

    def delete(self, voice_id: str) -> None:
        with self._lock:
            self.get(voice_id)
            self._remove(voice_id)

    def _remove(self, voice_id: str) -> None:
        (self.directory / f"{voice_id}.json").unlink(missing_ok=True)
        (self.directory / voice_id).unlink(missing_ok=True)

    def _unique(self, wanted: str) -> str:
        stem, suffix = wanted.rsplit(".", 1)
        candidate, n = wanted, 1
        while (self.directory / candidate).exists() or (self.directory / f"{candidate}.json").exists():
            n += 1
            candidate = f"{stem}_{n}.{suffix}"
        return candidate

    def _read(self, meta: Path) -> SavedVoice | None:
        try:
            return SavedVoice(**json.loads(meta.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def _expired(self, voice: SavedVoice) -> bool:
        return voice.expires_at is not None and voice.expires_at <= self._clock()

    def _expire(self) -> None:
        with self._lock:
            for meta in self.directory.glob("*.json"):
                voice = self._read(meta)
                if voice and self._expired(voice):
                    self._remove(voice.id)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clip_key(clip: bytes) -> str:
    return hashlib.sha256(clip).hexdigest()


class ConditionalsCache:
    """A bounded least-recently-used map from (model, clip hash) to speaker conditionals."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, key: tuple[str, str], make: Callable[[], Any]) -> Any:
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        value = make()
        self._items[key] = value
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
