"""Faults: the GPU running out of memory, weights that cannot be loaded, a process killed while it saves a voice,
and memory that must stay flat over many requests and voices."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import time
from typing import Iterator

import pytest
import torch

from conftest import ROOT, TEST_CHUNK_TOKENS, engine_on_cpu, running_studio
from engine import (Engine, EngineConfig, ModelUnavailable, SynthesisFailed, SynthesisRequest, Voice, VoiceLibrary,
                    audio)
from settings import Settings
from tools.random_checkpoint import synthetic_voice
from ui import handlers

# 100 requests over 25 voices, four in a row each, against the memory after 20: every voice is derived once, cached,
# then evicted from a cache of 2.
REQUESTS = 100
VOICES = 25
BASELINE_AFTER = 20
CACHE_CAPACITY = 2
RSS_MARGIN_MB = 150


def tiny(text: str = "Hi.", **fields) -> SynthesisRequest:
    return SynthesisRequest(text, max_tokens_per_chunk=3, seed=1, **fields)


def test_cuda_out_of_memory_double_fails_the_request_frees_the_cache_and_the_next_is_served(
        engine, monkeypatch, reference_clip):
    engine.synthesize(tiny(voice=Voice(clip=reference_clip)))
    assert len(engine.synthesizer.cache) >= 1

    def cuda_out_of_memory_double(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (a test double)")

    with engine.using_model() as model:
        monkeypatch.setattr(model, "vocode", cuda_out_of_memory_double)
    with pytest.raises(SynthesisFailed, match="ran out of memory"):
        engine.synthesize(tiny())
    assert len(engine.synthesizer.cache) == 0
    monkeypatch.undo()
    assert engine.synthesize(tiny("The next one.")).duration > 0


def test_weights_that_cannot_load_are_reported_in_the_console_and_to_the_asker(tmp_path, caplog, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline_hub_double(**kwargs):
        raise LocalEntryNotFoundError("no network (a test double)")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline_hub_double)
    for checkpoint_dir, words in ((tmp_path / "empty", "has no chatterbox weights"), (None, "Could not download")):
        broken = Engine(EngineConfig(device="cpu", checkpoint_dir=checkpoint_dir, data_dir=tmp_path / "data"))
        with caplog.at_level(logging.INFO, logger="engine.engine"):
            for _ in range(2):  # each request tries again, and the engine stays up
                with pytest.raises(ModelUnavailable, match=words):
                    broken.synthesize(SynthesisRequest("Hello."))
        assert "Could not load chatterbox" in caplog.text and words in caplog.text  # the console
        desk = handlers.Handlers(broken, Settings())
        assert "No model is loaded" in desk.engine_status()  # the state, not one visitor's old error
        assert broken.status()["model"] is None
        broken.close()


def test_once_the_checkpoint_is_mended_the_next_request_loads_it(tiny_checkpoint, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    for source in tiny_checkpoint.iterdir():
        if source.name == "t3_cfg.safetensors":
            (folder / source.name).write_bytes(b"half a download")
        else:
            (folder / source.name).symlink_to(source)
    studio = Engine(EngineConfig(device="cpu", checkpoint_dir=folder, data_dir=tmp_path / "data",
                                 max_chunk_tokens=TEST_CHUNK_TOKENS))
    try:
        with pytest.raises(ModelUnavailable, match="Could not load"):
            studio.synthesize(tiny())
        (folder / "t3_cfg.safetensors").unlink()
        (folder / "t3_cfg.safetensors").symlink_to(tiny_checkpoint / "t3_cfg.safetensors")
        assert studio.synthesize(tiny()).duration > 0
        assert studio.status()["model"] == "chatterbox"
    finally:
        studio.close()


def test_a_studio_stopped_with_sigterm_removes_its_scratch_folder(tiny_checkpoint, tmp_path_factory):
    temp = tmp_path_factory.mktemp("temp")
    with running_studio(tiny_checkpoint, tmp_path_factory, TMPDIR=str(temp)):
        assert list(temp.glob("chatterbox-takes-*"))
    assert not list(temp.glob("chatterbox-takes-*"))


SAVER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from engine.voices import VoiceLibrary
library = VoiceLibrary(Path(sys.argv[1]))
clip = bytes(range(256)) * 16384
print("ready", flush=True)
n = 0
while True:
    n += 1
    library.add(f"v{n}.wav", clip, name=f"voice {n}")
"""


@pytest.mark.parametrize("after_seconds", [0.3, 1.1])
def test_killing_the_process_while_it_saves_leaves_the_library_readable(tmp_path, after_seconds):
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), str(ROOT)], stdout=subprocess.PIPE)
    assert saver.stdout.readline().strip() == b"ready"
    time.sleep(after_seconds)
    saver.kill()
    saver.wait()
    library = VoiceLibrary(tmp_path)
    voices = library.list()
    assert voices, "nothing was saved before the kill"
    for voice in voices:
        assert library.clip(voice.id) == bytes(range(256)) * 16384 and voice.name == f"voice {voice.id[1:-4]}"
    assert not list(tmp_path.glob(".tmp-*"))  # half-written files are cleared when the library opens


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024


@pytest.fixture(scope="module")
def one_step_engine(tiny_checkpoint, tmp_path_factory) -> Iterator[Engine]:
    """The tiny checkpoint with one flow-matching step: every module runs as in any request, in a fifth of the time,
    so 100 requests fit in CI."""
    yield from engine_on_cpu(tmp_path_factory, tiny_checkpoint, voice_cache_size=CACHE_CAPACITY, flow_steps=1)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
def test_memory_stays_flat_over_many_requests_and_voices(one_step_engine):
    clips = [audio.encode(synthetic_voice(1.2, seed=500 + n), 24000, "wav") for n in range(VOICES)]
    baseline = None
    started = time.monotonic()
    for n in range(REQUESTS):
        one_step_engine.synthesize(tiny(voice=Voice(clip=clips[n * VOICES // REQUESTS])))
        assert len(one_step_engine.synthesizer.cache) <= CACHE_CAPACITY
        if n + 1 == BASELINE_AFTER:
            gc.collect()
            baseline = rss_mb()
    assert one_step_engine.synthesizer.cache.misses == VOICES
    gc.collect()
    grown = rss_mb() - baseline
    print(f"RSS after {BASELINE_AFTER} requests {baseline:.0f} MB; after {REQUESTS} over {VOICES} voices "
          f"{baseline + grown:.0f} MB (+{grown:.1f} MB) in {time.monotonic() - started:.0f} s")
    assert grown < RSS_MARGIN_MB
