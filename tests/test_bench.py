"""The benchmark's sides on the tiny checkpoints: the studio's times the work it was asked for and counts speech,
not the pauses between chunks; upstream's runs the models of upstream's main branch too."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

TOKENS, CHUNKS = 6, 2
SECONDS_PER_TOKEN = 0.04  # S3Gen makes two 20 ms mel frames per speech token


@pytest.fixture(scope="module")
def studio_side(tiny_checkpoint) -> dict:
    command = [sys.executable, "-m", "bench", "--side", "studio", "--checkpoint", str(tiny_checkpoint),
               "--device", "cpu", "--tokens", str(TOKENS), "--runs", "1", "--chunks", str(CHUNKS),
               "--concurrency", "2", "--precision", "fast", "--batch-requests", "2"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_studio_side_times_the_tokens_it_was_asked_for(studio_side):
    assert studio_side["tokens"] == TOKENS * CHUNKS
    assert 0 < studio_side["t3"] < studio_side["wall"] and 0 < studio_side["s3gen"] < studio_side["wall"]
    assert 0 < studio_side["first_audio"] <= studio_side["wall"]


def test_the_studio_side_counts_speech_not_the_pauses_between_chunks(studio_side):
    longest_speech = TOKENS * CHUNKS * SECONDS_PER_TOKEN  # 0.48 s; the pause between the chunks alone is 0.6 s
    assert 0 < studio_side["audio"] <= longest_speech + 1e-6
    assert 0 < studio_side["concurrent_rtf"]


@pytest.mark.parametrize("model, checkpoint, tail", [("chatterbox-nano", "nano_checkpoint", 3),
                                                     ("chatterbox-multilingual-v3", "v3_checkpoint", -1)])
def test_the_upstream_side_runs_mains_models_as_main_sets_them_up(model, checkpoint, tail, request):
    """Nano as 0.1.7's Turbo class with GPT-2 small (three silence tokens after the speech); V3 without its last
    token's audio, as main cuts it."""
    command = [sys.executable, "-m", "bench", "--side", "upstream", "--model", model, "--checkpoint",
               str(request.getfixturevalue(checkpoint)), "--device", "cpu", "--tokens", str(TOKENS), "--runs", "1",
               "--chunks", "1", "--concurrency", "1", "--precision", "fast"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    upstream_side = json.loads(out.stdout.strip().splitlines()[-1])
    assert upstream_side["tokens"] == TOKENS and 0 < upstream_side["t3"] < upstream_side["wall"]
    assert 0 < upstream_side["audio"] <= (TOKENS + tail) * SECONDS_PER_TOKEN + 1e-6
