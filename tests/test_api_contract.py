"""The API adapter without a model: request translation, and error answers for states hard to reach on a live
server (queue full, failed synthesis, API key, upload limits), driven by the OpenAI SDK through TestClient."""

from __future__ import annotations

from dataclasses import dataclass, field

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import api
from api.schemas import SpeechRequest
from api.speech import synthesis_request
from engine import Busy, EngineConfig, ModelUnavailable, NotFound, SynthesisFailed, SynthesisRequest, VoiceLibrary
from settings import Settings


@dataclass
class FakeJob:
    """A job whose iteration raises the engine error it was given."""

    request: SynthesisRequest
    error: Exception
    id: int = 1
    seed: int = 1
    ignored_parameters: list = field(default_factory=list)
    ignored_tags: list = field(default_factory=list)
    cancelled: bool = False

    def __iter__(self):
        raise self.error

    def result(self):
        raise self.error

    def cancel(self) -> None:
        self.cancelled = True


class FakeEngine:
    """The parts of Engine the API uses; `submit` fails as told."""

    def __init__(self, library: VoiceLibrary, error: Exception):
        self.library = library
        self.config = EngineConfig()
        self.error = error

    def submit(self, request: SynthesisRequest) -> FakeJob:
        if isinstance(self.error, Busy):
            raise self.error
        return FakeJob(request, self.error)

    def status(self) -> dict:
        return {"model": None, "device": "cpu", "queue_depth": 0, "busy": False}


@pytest.fixture
def library(tmp_path) -> VoiceLibrary:
    return VoiceLibrary(tmp_path / "voices")


def sdk(library: VoiceLibrary, error: Exception, **settings) -> tuple[openai.OpenAI, TestClient]:
    app = FastAPI(**api.app_kwargs(FakeEngine(library, error), Settings(**settings)))
    http = TestClient(app)
    return openai.OpenAI(base_url="http://testserver/v1", api_key="key", http_client=http, max_retries=0), http


def speak(client: openai.OpenAI) -> None:
    client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")


def test_queue_full_is_429_with_retry_after(library):
    client, _ = sdk(library, Busy("The studio is busy.", retry_after=12))
    with pytest.raises(openai.RateLimitError) as error:
        speak(client)
    assert error.value.response.headers["retry-after"] == "12" and error.value.body["code"] == "busy"


@pytest.mark.parametrize("failure, status", [(SynthesisFailed("no speech"), 500), (ModelUnavailable("no weights"), 503)])
def test_server_failures_tell_the_sdk_not_to_retry(library, failure, status):
    client, _ = sdk(library, failure)
    with pytest.raises(openai.InternalServerError) as error:
        speak(client)
    assert error.value.status_code == status and error.value.response.headers["x-should-retry"] == "false"
    assert error.value.body["message"] == failure.message and error.value.body["type"] == "server_error"


def test_api_key_guards_every_api_route_but_health(library):
    client, http = sdk(library, SynthesisFailed("x"), api_key="secret")
    with pytest.raises(openai.AuthenticationError) as error:
        speak(client)
    assert error.value.body["code"] == "invalid_api_key"
    for path in ("/v1/models", "/v1/audio/voices", "/api/speakers", "/get_predefined_voices", "/get_reference_files",
                 "/api/ui/initial-data"):
        response = http.get(path)
        assert response.status_code == 401 and set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert http.get("/v1/models", headers={"Authorization": "Bearer secret"}).status_code == 200
    assert http.get("/health").status_code == 200
    with pytest.raises(WebSocketDisconnect) as closed, http.websocket_connect("/ws/tts") as socket:
        socket.receive_text()
    assert closed.value.code == 1008
    with http.websocket_connect("/ws/tts?api_key=secret") as socket:
        socket.send_text('{"input": "Hi.", "voice": "nobody"}')
        assert socket.receive_json()["status"] == 404


def test_oversized_upload_is_413(library):
    _, http = sdk(library, SynthesisFailed("x"), max_upload_mb=1)
    big = b"\0" * (1024 * 1024 + 1)
    response = http.post("/api/create_speaker", files={"file": ("big.wav", big)})
    assert response.status_code == 413 and response.json()["error"]["param"] == "file"
    response = http.post("/v2/audio/speech_with_prompt", files={"audio_prompt": ("big.wav", big)},
                         data={"input": "Hi."})
    assert response.status_code == 413 and response.json()["error"]["param"] == "audio_prompt"


def translate(library: VoiceLibrary, settings: Settings = Settings(), **body) -> SynthesisRequest:
    return synthesis_request(SpeechRequest(**body), settings, settings.composer(EngineConfig(), library))


def test_openai_names_and_compatibility_readings(library):
    plain = translate(library, model="tts-1-hd", input="Hi.", voice="nova", speed=1.5, instructions="0.8")
    assert plain.model is None and plain.voice.is_builtin and plain.speed == 1.5 and plain.exaggeration == 0.8
    assert translate(library, input="Hi.", instructions="Speak warmly.").exaggeration is None  # the model's default
    pyvideotrans = translate(library, Settings(speed_as_cfg=True), model="chatterbox-tts", input="Salut.", voice="fr",
                             speed=0.3, instructions=0.9)
    assert (pyvideotrans.model, pyvideotrans.language, pyvideotrans.cfg_weight, pyvideotrans.speed,
            pyvideotrans.exaggeration) == ("chatterbox-multilingual", "fr", 0.3, 1.0, 0.9)
    english = translate(library, input="Hi.", voice="en")
    assert english.model is None and english.language == "en"
    with pytest.raises(NotFound):
        translate(library, input="Hi.", model="whisper-1")


def test_library_voices_aliases_and_presets_layer_in_order(library):
    library.add("anwar.wav", b"RIFF", name="Anwar", settings={"exaggeration": 0.9, "temperature": 0.6})
    aliased = Settings(voice_aliases=(("alloy", "anwar.wav"),))
    for voice in ("anwar.wav", {"id": "anwar.wav"}, "alloy"):
        request = translate(library, aliased, input="Hi.", voice=voice, preset="calm", temperature=0.95)
        # the voice's defaults, then the preset (calm: exaggeration 0.3, speed 0.9), then the body's values
        assert request.voice.library_id == "anwar.wav"
        assert (request.exaggeration, request.speed, request.temperature) == (0.3, 0.9, 0.95)
    with pytest.raises(NotFound):
        translate(library, input="Hi.", voice="../anwar.wav")
    with pytest.raises(NotFound):
        translate(library, input="Hi.", preset="../calm")



def test_candidates_trim_and_loudness_reach_the_request_and_candidates_need_a_recognizer(library):
    asked = translate(library, input="Hi.", candidates=3, trim=True, loudness=-16)
    assert (asked.candidates, asked.trim, asked.loudness) == (3, True, -16.0)
    engine = FakeEngine(library, SynthesisFailed("x"))
    engine.config = EngineConfig(asr_model="off")
    http = TestClient(FastAPI(**api.app_kwargs(engine, Settings())))
    refused = http.post("/v1/audio/speech", json={"input": "Hi.", "candidates": 2})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "candidates"
    assert "--asr-model" in refused.json()["error"]["message"]
    streamed = http.post("/v1/audio/speech", json={"input": "Hi.", "trim": True, "stream_format": "audio"})
    assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "stream_format"
    assert http.post("/v1/audio/speech", json={"input": "Hi.", "loudness": 0}).json()["error"]["param"] == "loudness"
