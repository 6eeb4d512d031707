"""Tags in the text and captions timed to the audio, through the real engine on the tiny checkpoints, the HTTP API
and the terminal."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest
import requests

from conftest import ROOT, studio_env
from engine import SynthesisRequest, audio
from engine.text import split
from engine.text.captions import Cue, cues_of, srt, webvtt

RATE = audio.MODEL_SAMPLE_RATE
ONE_SAMPLE = 1 / RATE


class TokenizerSpy:
    """Test double around a model's real tokenizer: it records each text it is given, then tokenizes it for real."""

    def __init__(self, real):
        self.real = real
        self.texts: list[str] = []

    def text_to_tokens(self, text: str, **options):
        self.texts.append(text)
        return self.real.text_to_tokens(text, **options)

    def __call__(self, text: str, **options):
        self.texts.append(text)
        return self.real(text, **options)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


@contextmanager
def tokenizer_spied(engine) -> Iterator[TokenizerSpy]:
    with engine.using_model() as model:
        spy = TokenizerSpy(model.upstream.tokenizer)
        model.upstream.tokenizer = spy
    try:
        yield spy
    finally:
        with engine.using_model() as model:
            model.upstream.tokenizer = spy.real


def captioned(engine, text: str, **values) -> tuple[list[Cue], audio.AudioChunk]:
    chunks = list(engine.submit(SynthesisRequest(text, seed=4, captions=True, **values)))
    return cues_of(chunks), audio.join(chunks)


def test_cues_follow_the_audio_made_and_a_pause_tag_is_exact_silence(engine):
    cues, clip = captioned(engine, "[pause:0.5s] One thing. Two things [pause:2s] and three.")
    assert [c.text for c in cues] == ["One thing.", "Two things", "and three."]
    assert cues[0].start == pytest.approx(0.5, abs=ONE_SAMPLE) and not clip.samples[:RATE // 2].any()
    assert all(a.start < a.end <= b.start < b.end for a, b in zip(cues, cues[1:]))
    assert cues[2].start - cues[1].end == pytest.approx(2.0, abs=ONE_SAMPLE)
    gap = clip.samples[round(cues[1].end * RATE):round(cues[2].start * RATE)]
    assert len(gap) == pytest.approx(2 * RATE, abs=1) and not gap.any()
    assert cues[-1].end == pytest.approx(clip.duration, abs=ONE_SAMPLE)


def test_speed_two_halves_the_cue_times(engine):
    normal, _ = captioned(engine, "One thing. Two things.")
    fast, _ = captioned(engine, "One thing. Two things.", speed=2.0)
    times = np.array([[c.start, c.end] for c in normal])
    assert np.allclose(np.array([[c.start, c.end] for c in fast]), times / 2, atol=0.02)


def test_a_sound_tag_the_model_cannot_perform_is_left_unsaid_and_reported(engine):
    with tokenizer_spied(engine) as spy:
        job = engine.submit(SynthesisRequest("Well [laugh] that is funny.", seed=1))
        chunk = job.result()
    assert job.ignored_tags == ["[laugh]"] and chunk.text == "Well that is funny."
    assert spy.texts and not any("laugh" in text for text in spy.texts)


def test_turbo_gets_its_sound_tags_as_written(turbo):
    with tokenizer_spied(turbo) as spy:
        job = turbo.submit(SynthesisRequest("Oh, that is hilarious! [chuckle] Anyway.", seed=1))
        job.result()
    assert job.ignored_tags == [] and any("[chuckle]" in text for text in spy.texts)


def test_pause_tags_end_chunks_add_up_and_keep_the_text_whole():
    text = "[pause:250ms] Hello there [pause:1s] [PAUSE: 0.5s] friend. Bye. [pause:2s]"
    chunks = split(text, 250)
    assert [(c.text, c.pause_after) for c in chunks] == [("Hello there", 1.5), ("friend. Bye.", 2.0)]
    assert chunks[0].lead == "[pause:250ms] " and chunks[0].pause_before == 0.25
    assert chunks[0].lead + "".join(c.text + c.gap for c in chunks) == text


@pytest.mark.parametrize("text, words", [("Wait [pause:long] here.", "not a pause tag"),
                                         ("Wait [pause:45s] here.", "at most 30 s"),
                                         ("[pause:1s] [laugh]", "no letters or digits")])
def test_a_tag_the_studio_cannot_read_is_refused_with_what_to_write(text, words):
    from engine import InvalidRequest

    with pytest.raises(InvalidRequest, match=words):
        split(text)


def test_srt_and_webvtt_are_written_as_players_read_them():
    cues = [Cue(0.0, 1.2345, "One."), Cue(3661.5, 3662.0, "Two.")]
    assert srt(cues) == "1\n00:00:00,000 --> 00:00:01,234\nOne.\n\n2\n01:01:01,500 --> 01:01:02,000\nTwo.\n\n"
    assert webvtt(cues) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.234\nOne.\n\n01:01:01.500 --> 01:01:02.000\nTwo.\n\n"


def test_the_captions_route_answers_audio_and_cues_together(studio):
    response = requests.post(f"{studio}/v1/audio/captioned_speech", timeout=300,
                             json={"input": "One. [pause:1s] Two.", "response_format": "wav", "seed": 2})
    assert response.status_code == 200, response.text
    answer = response.json()
    clip = audio.decode(base64.b64decode(answer["audio"]))
    assert answer["duration"] == pytest.approx(len(clip) / RATE, abs=0.01)
    assert [c["text"] for c in answer["cues"]] == ["One.", "Two."]
    assert answer["cues"][1]["start"] - answer["cues"][0]["end"] == pytest.approx(1.0, abs=0.002)
    assert answer["srt"].startswith("1\n00:00:00,000") and answer["vtt"].startswith("WEBVTT")


def test_the_captions_route_streams_each_cue_after_its_audio(studio):
    with requests.post(f"{studio}/v1/audio/captioned_speech", stream=True, timeout=300,
                       json={"input": "One. Two. Three.", "response_format": "pcm", "stream": True}) as response:
        assert response.status_code == 200, response.text
        events = [json.loads(line[len(b"data: "):]) for line in response.iter_lines() if line.startswith(b"data: ")]
    kinds = [event["type"] for event in events]
    assert kinds == ["speech.audio.delta", "speech.caption"] * 3 + ["speech.audio.done"]
    cues = [event for event in events if event["type"] == "speech.caption"]
    assert [c["text"] for c in cues] == ["One.", "Two.", "Three."] and cues[0]["start"] == 0.0


def synth(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "synth", *map(str, args)], cwd=cwd,
                          env=studio_env(), capture_output=True, text=True, timeout=600)


def test_synth_writes_captions_beside_the_audio(tiny_checkpoint, tmp_path):
    run = synth("One. Two.", "--checkpoint-dir", tiny_checkpoint, "-o", "out.mp3", "--captions", "out.vtt",
                cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    vtt = (tmp_path / "out.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ") and vtt.count(" --> ") == 2 and "Two." in vtt
    assert synth("Hi.", "--captions", "out.txt", cwd=tmp_path).stderr.startswith("error: Captions are written as")


def test_dry_run_prints_the_chunks_and_pauses_without_a_model(tmp_path):
    run = synth("[pause:1s] Mr. Smith went to Washington. [pause:2s] He laughed [laugh] a lot.", "--dry-run",
                "--checkpoint-dir", tmp_path / "no-weights-here", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["(silence: 1 s)", "1. Mr. Smith went to Washington.  ⏸ 2 s",
                                       "2. He laughed a lot.", "(chatterbox does not perform [laugh]: left unsaid)"]
