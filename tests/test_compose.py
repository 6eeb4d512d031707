"""One request path: the same words through every front door make the same SynthesisRequest.

The front doors run for real (the HTTP API through FastAPI's TestClient, the Gradio API's `/synthesize` handler,
`app.py synth` and `app.py dataset`); only the engine behind them is a test double that records what it is given.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import api
import app
import cli
from engine import (Ask, AudioChunk, EngineConfig, InvalidAudio, InvalidRequest, SynthesisRequest, Voice, VoiceLibrary,
                    audio)
from settings import Settings
from tools.random_checkpoint import synthetic_voice
from ui import handlers

TEXT = "Bonjour à tous."
SAVED = {"exaggeration": 0.9, "temperature": 0.6, "speed": 0.9}


class RecordedJob:
    """A job that delivers half a second of a tone at once."""

    def __init__(self, request: SynthesisRequest):
        self.request, self.seed, self.id, self.chunks = request, request.seed, 1, 1
        self.ignored_parameters: list[str] = []
        self.ignored_tags: list[str] = []
        self.cancelled = False

    def __iter__(self):
        yield AudioChunk(24000, synthetic_voice(0.5, seed=1), 0, 1, self.request.text)

    def result(self) -> AudioChunk:
        return audio.join(list(self))

    def cancel(self) -> None:
        self.cancelled = True


class RecordingEngine:
    """Test double of the engine: the parts the front doors use; it records every request it is given."""

    request_batch = 1
    requests_to_fill = 1

    def __init__(self, library: VoiceLibrary, model: str = "chatterbox"):
        self.config = EngineConfig(model=model)
        self.library = library
        self.requests: list[SynthesisRequest] = []

    def submit(self, request: SynthesisRequest) -> RecordedJob:
        self.requests.append(request)
        return RecordedJob(request)

    def synthesize(self, request: SynthesisRequest) -> AudioChunk:
        return self.submit(request).result()

    def status(self) -> dict:
        return {"model": None, "device": "cpu", "queue_depth": 0, "busy": False}


@pytest.fixture
def recording(tmp_path, monkeypatch) -> RecordingEngine:
    library = VoiceLibrary(tmp_path / "voices")
    library.add("anwar.wav", b"RIFF", name="Anwar", language="fr", settings=SAVED)
    engine = RecordingEngine(library)
    monkeypatch.setattr(cli, "build_engine", lambda settings: engine)
    return engine


def through_the_http_api(engine, voice, tmp_path):
    http = TestClient(FastAPI(**api.app_kwargs(engine, Settings())))
    answer = http.post("/v1/audio/speech", json={"input": TEXT, "voice": voice, "temperature": 0.7, "seed": 7,
                                                 "response_format": "wav"})
    assert answer.status_code == 200, answer.text


def through_the_gradio_api(engine, voice, tmp_path):
    desk = handlers.Handlers(engine, Settings())
    desk.api_synthesize(TEXT, voice_id=voice, temperature=0.7, seed=7)


def through_the_cli(engine, voice, tmp_path):
    assert app.main(["synth", TEXT, "--voice", voice, "--temperature", "0.7", "--seed", "7",
                     "-o", str(tmp_path / "out.wav")]) == 0


def through_the_dataset_runner(engine, voice, tmp_path):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text(TEXT + "\n", encoding="utf-8")
    assert app.main(["dataset", "--phrases", str(phrases), "--voice", voice, "--out", str(tmp_path / "set"),
                     "--temperature", "0.7", "--seed", "7"]) == 0


FRONT_DOORS = [through_the_http_api, through_the_gradio_api, through_the_cli, through_the_dataset_runner]


def what_matters(request: SynthesisRequest) -> tuple:
    return request.text, request.voice, request.model, request.parameters()


@pytest.mark.parametrize("voice, model, language, exaggeration, speed", [
    ("anwar.wav", "chatterbox-multilingual", "fr", 0.9, 0.9),  # the library voice's language and saved defaults
    ("fr", "chatterbox-multilingual", "fr", None, 1.0),  # a language code: the built-in voice in that language
    ("nova", None, None, None, 1.0),  # an OpenAI voice name: the built-in voice, the studio's default model
])
def test_every_front_door_composes_the_same_request(recording, tmp_path, voice, model, language, exaggeration, speed):
    for front_door in FRONT_DOORS:
        folder = tmp_path / front_door.__name__
        folder.mkdir()
        front_door(recording, voice, folder)
    first, *others = recording.requests
    assert len(others) == len(FRONT_DOORS) - 1
    assert all(what_matters(other) == what_matters(first) for other in others)
    assert (first.model, first.language, first.exaggeration, first.speed, first.temperature, first.seed) == \
        (model, language, exaggeration, speed, 0.7, 7)


def composer(library: VoiceLibrary, model: str = "chatterbox", **settings):
    return Settings(**settings).composer(EngineConfig(model=model), library)


def test_layers_voice_defaults_then_preset_then_given_values(recording):
    request = composer(recording.library).compose(Ask("Hi.", voice="anwar.wav", preset="calm",
                                                      values={"temperature": 0.95, "cfg_weight": None}))
    # anwar: exaggeration 0.9, temperature 0.6, speed 0.9; calm: exaggeration 0.3, cfg_weight 0.6, temperature 0.6,
    # speed 0.9; given: temperature 0.95 (a None value is unset)
    assert (request.exaggeration, request.cfg_weight, request.temperature, request.speed) == (0.3, 0.6, 0.95, 0.9)


def test_the_model_follows_the_language_unless_one_is_asked_for(recording):
    compose = composer(recording.library).compose
    assert compose(Ask("Hallo.", language="de")).model == "chatterbox-multilingual"
    assert compose(Ask("Hello.", language="en")).model is None
    assert composer(recording.library, model="chatterbox-multilingual").compose(Ask("Hallo.", language="de")).model \
        is None  # the default already speaks German
    # a library voice's language is a default: a model asked for that does not speak it speaks English instead
    english = compose(Ask("Hello.", voice="anwar.wav", model="chatterbox"))
    assert (english.model, english.language) == ("chatterbox", None)
    with pytest.raises(InvalidRequest, match="English only"):
        compose(Ask("Hallo.", model="chatterbox-turbo", language="de"))
    with pytest.raises(InvalidRequest, match="Unknown model"):
        compose(Ask("Hi.", model="whisper-1"))
    with pytest.raises(InvalidRequest, match="Unknown parameter"):
        compose(Ask("Hi.", values={"volume": 2}))


def test_a_voice_is_saved_only_if_the_studios_default_model_can_clone_from_it(tmp_path):
    library = VoiceLibrary(tmp_path / "voices")
    four_seconds = audio.encode(synthetic_voice(4.0, seed=3), 24000, "wav")
    composer(library).check_clip(four_seconds)
    with pytest.raises(InvalidAudio, match="chatterbox-turbo needs at least 5 s"):
        composer(library, model="chatterbox-turbo").check_clip(four_seconds)
    turbo_studio = TestClient(FastAPI(**api.app_kwargs(RecordingEngine(library, "chatterbox-turbo"), Settings())))
    refused = turbo_studio.post("/api/create_speaker", files={"file": ("short.wav", four_seconds)})
    assert refused.status_code == 400 and "at least 5 s" in refused.json()["error"]["message"]
    silent = audio.encode(np.zeros(24000 * 6, np.float32), 24000, "wav")
    with pytest.raises(InvalidAudio, match="silent"):
        composer(library).check_clip(silent)
    assert library.list() == []


def test_the_built_in_voice_by_name_and_regional_language_tags(recording):
    compose = composer(recording.library).compose
    assert compose(Ask("Hi.", voice="built-in")).voice == compose(Ask("Hi.")).voice == Voice.builtin()
    assert [compose(Ask("Hola.", language=tag)).language for tag in ("es-MX", "ES_es", "es")] == ["es"] * 3
    assert compose(Ask("你好。", language="zh-cn")).language == "zh"
    with pytest.raises(InvalidRequest, match="Unsupported language 'xx-yy'"):
        compose(Ask("Hi.", language="xx-yy"))
