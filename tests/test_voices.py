"""The voice library on disk and the conditionals cache."""

import threading

import pytest

from engine import InvalidRequest, NotFound, VoiceLibrary
from engine.voices import ConditionalsCache, check_id, sanitize_id


def test_saved_voice_is_listed_and_its_clip_read_back(tmp_path):
    library = VoiceLibrary(tmp_path)
    voice = library.add("Anwar Ibrahim.wav", b"RIFF-bytes", name="Anwar Ibrahim", language="ms")
    assert voice.id == "Anwar_Ibrahim.wav"
    assert [(v.id, v.name) for v in VoiceLibrary(tmp_path).list()] == [("Anwar_Ibrahim.wav", "Anwar Ibrahim")]
    assert library.clip(voice.id) == b"RIFF-bytes"


def test_ids_are_made_unique(tmp_path):
    library = VoiceLibrary(tmp_path)
    assert library.add("a.wav", b"1").id == "a.wav"
    assert library.add("a.wav", b"2").id == "a_2.wav"


@pytest.mark.parametrize("name,expected", [
    ("../../etc/passwd", "passwd.wav"), ("/abs/path/v.mp3", "v.mp3"), ("C:\\x\\v.flac", "v.flac"),
    ("nul\x00byte.wav", "nulbyte.wav"), ("..", "voice.wav"), ("ｖｏｉｃｅ.wav", "voice.wav"),
])
def test_uploaded_names_become_safe_file_names(name, expected):
    assert sanitize_id(name) == expected


@pytest.mark.parametrize("voice_id", ["../x.wav", "/etc/passwd", "a/b.wav", "x.wav\x00", "..", ""])
def test_path_tricks_are_not_found(voice_id):
    with pytest.raises(NotFound):
        check_id(voice_id)


def test_deleted_voice_is_gone(tmp_path):
    library = VoiceLibrary(tmp_path)
    voice = library.add("v.wav", b"x")
    library.delete(voice.id)
    assert library.list() == []
    with pytest.raises(NotFound):
        library.clip(voice.id)


def test_temporary_voice_expires(tmp_path):
    now = [1000.0]
    library = VoiceLibrary(tmp_path, clock=lambda: now[0])
    voice = library.add("t.wav", b"x", ttl_seconds=60)
    assert library.get(voice.id)
    now[0] += 61
    assert library.list() == []
    assert not (tmp_path / "t.wav").exists()


def test_empty_clip_is_refused(tmp_path):
    with pytest.raises(InvalidRequest):
        VoiceLibrary(tmp_path).add("v.wav", b"")


def test_concurrent_create_and_delete_leave_a_consistent_library(tmp_path):
    library = VoiceLibrary(tmp_path)

    def churn():
        for _ in range(20):
            voice = library.add("same.wav", b"data")
            library.delete(voice.id)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert library.list() == []
    assert not list(tmp_path.iterdir())


def test_cache_is_bounded_and_counts_hits():
    cache = ConditionalsCache(capacity=2)
    made = []
    for key in ["a", "b", "a", "c", "b"]:
        cache.get_or_make(("m", key), lambda k=key: made.append(k) or k)
    assert made == ["a", "b", "c", "b"]
    assert len(cache) == 2 and cache.hits == 1
