"""Bad input of every kind gets a specific error, in the API, the desk and the CLI, and nothing else is disturbed.

The API runs in-process over the session's real engine: every request here is refused before synthesis, except
the last, which checks the engine still serves. A bounded property-based fuzz covers the speech route.
"""

from __future__ import annotations

import io
import string

import numpy as np
import pytest
import schemathesis
from schemathesis import GenerationMode
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as fuzz_settings, strategies as st

import api
import app
from api.guard import ApiGuard, RateLimiter
from engine import AudioChunk, EngineConfig, SynthesisRequest, VoiceLibrary
from settings import Settings
from tools.random_checkpoint import synthetic_voice
from ui import handlers

RATE = 24000
LIMITS = Settings(max_input_chars=200, max_upload_mb=1, cors_origins=("http://allowed.example",))


def assert_error(response, status: int, param: str | None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    return error


@pytest.fixture(scope="module")
def http(engine) -> TestClient:
    with TestClient(FastAPI(**api.app_kwargs(engine, LIMITS))) as client:  # starting it installs the guard
        yield client


SPEECH_CASES = [
    ({"input": ""}, 400, "input", "empty"),
    ({"input": "  \n\t "}, 400, "input", "empty"),
    ({"input": "\x00\x07\x1b"}, 400, "input", "empty"),
    ({"input": "?!… — ..."}, 400, "input", "no letters"),
    ({"input": "😀🎉👍"}, 400, "input", "emoji"),
    ({"input": "a" * 201}, 413, "input", "limit is 200"),
    ({"voice": "alloy"}, 400, "input", "Field required"),
    ({"input": 5}, 400, "input", "string"),
    ({"input": ["Hi."]}, 400, "input", "string"),
    ({"input": "Hi.", "speed": "fast"}, 400, "speed", "number"),
    ({"input": "Hi.", "seed": 1.5}, 400, "seed", "integer"),
    ({"input": "Hi.", "speed": 9}, 400, "speed", "between 0.25 and 4.0"),
    ({"input": "Hi.", "temperature": 0}, 400, "temperature", "between"),
    ({"input": "Hi.", "exaggeration": -1}, 400, "exaggeration", "between"),
    ({"input": "Hi.", "top_p": 2}, 400, "top_p", "between"),
    ({"input": "Hi.", "seed": 2**33}, 400, "seed", "whole number"),
    ({"input": "Hi.", "response_format": "ogg"}, 400, "response_format", "mp3"),
    ({"input": "Hi.", "model": "tts-9"}, 404, "model", "Unknown model"),
    ({"input": "Hi.", "voice": "nobody.wav"}, 404, "voice", "Unknown voice"),
    ({"input": "Hi.", "preset": "loud"}, 404, "preset", "loud"),
    ({"input": "Hi.", "language": "xx"}, 400, "language", "Unsupported language"),
    ({"input": "Hi.", "language": "fr", "model": "chatterbox"}, 400, "language", "English only"),
    ({"input": "Hi.", "voice": "../voices/x.wav"}, 404, "voice", "Unknown voice"),
    ({"input": "Hi.", "voice": "/etc/passwd"}, 404, "voice", "Unknown voice"),
    ({"input": "Hi.", "voice": "x.wav\x00.json"}, 404, "voice", "Unknown voice"),
    ({"input": "Hi.", "voice": "ｖｏｉｃｅ.wav"}, 404, "voice", "Unknown voice"),
    ({"input": "Hi.", "voice": {"id": "..\\..\\x.wav"}}, 404, "voice", "Unknown voice"),
]


@pytest.mark.parametrize("body, status, param, words", SPEECH_CASES)
def test_bad_speech_requests_get_a_specific_error(http, body, status, param, words):
    error = assert_error(http.post("/v1/audio/speech", json=body), status, param)
    assert words.lower() in error["message"].lower()


@pytest.mark.parametrize("raw", [b'{"input": "Hi.', b'{"input": "\xff\xfe caf\xe9"}', b"[]", b"null", b"Hi."])
def test_malformed_json_and_invalid_utf8_are_400(http, raw):
    response = http.post("/v1/audio/speech", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and set(response.json()["error"]) == {"message", "type", "param", "code"}


def wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([samples] * channels, axis=1) if channels > 1 else samples, rate, format="WAV")
    return buffer.getvalue()


def test_bad_uploads_get_a_specific_error(http, reference_clip):
    cases = [(b"", "empty"), (b"this is not audio" * 50, "Could not read"), (reference_clip[:300], "Could not read"),
             (wav(np.zeros(RATE * 3, np.float32), RATE), "silent"), (wav(synthetic_voice(0.4), RATE), "at least")]
    for data, words in cases:
        for path, field in (("/api/create_speaker", "file"), ("/v2/audio/speech_with_prompt", "audio_prompt")):
            response = http.post(path, files={field: ("clip.wav", data)}, data={"input": "Hi."})
            assert words in assert_error(response, 400, "voice")["message"], (path, words)
    too_big = http.post("/api/create_speaker", files={"file": ("big.wav", b"\0" * (1024 * 1024 + 1))})
    assert_error(too_big, 413, "file")
    assert http.get("/api/speakers").json()["speakers"] == []


@pytest.mark.parametrize("channels, rate", [(2, 96000), (1, 8000), (2, 44100), (1, 96000)])
def test_stereo_and_odd_rate_clips_are_converted(http, channels, rate):
    created = http.post("/api/create_speaker", files={"file": (f"c{channels}r{rate}.wav",
                                                               wav(synthetic_voice(2.0, rate), rate, channels))})
    assert created.status_code == 200, created.text
    assert http.delete(f"/api/speakers/{created.json()['id']}").json()["deleted"]


@pytest.mark.parametrize("voice_id", ["..%2F..%2Fsettings.py", "%2Fetc%2Fpasswd", "x.wav%00", "%EF%BD%96.wav",
                                      "..", ".hidden", "a%5Cb.wav"])
def test_odd_voice_ids_never_reach_a_file(http, voice_id):
    assert http.get(f"/api/speakers/{voice_id}/audio").status_code == 404
    assert http.delete(f"/api/speakers/{voice_id}").status_code in (404, 405)


def test_the_engine_serves_normally_after_all_of_that(http, engine):
    assert http.get("/health").json()["queue_depth"] == 0
    clip = engine.synthesize(SynthesisRequest("Still fine.", max_tokens_per_chunk=3, seed=1))
    assert clip.duration > 0


# The desk and the CLI say the same things.

DESK_CASES = [("", "empty"), ("   ", "empty"), ("!!! ???", "no letters"), ("🎉🎉", "emoji"), ("x" * 201, "limit is 200")]


@pytest.mark.parametrize("text, words", DESK_CASES)
def test_desk_shows_a_readable_error(engine, tmp_path, text, words):
    desk = handlers.Handlers(engine, LIMITS)
    values = [0.5, 0.5, 0.8, 1.0, 0.05, 1.2, 1.0]
    with pytest.raises(handlers.gr.Error, match=words):
        next(desk.generate(text, None, "", "mp3", *values, -1, "", "", False, [], None))
    with pytest.raises(handlers.gr.Error, match="There is no library voice"):
        next(desk.generate("Hi.", None, "../x.wav", "mp3", *values, -1, "", "", False, [], None))
    with pytest.raises(handlers.gr.Error, match="speed is 9"):
        next(desk.generate("Hi.", None, "", "mp3", *values[:-1], 9.0, -1, "", "", False, [], None))


@pytest.mark.parametrize("args, words", [
    (["", ], "empty"), (["!!!"], "no letters"), (["🎉"], "emoji"), (["Hi.", "--temperature", "9"], "temperature is 9"),
    (["Hi.", "--language", "xx"], "Unsupported language"), (["Hi.", "-o", "out.docx"], "Cannot write"),
])
def test_cli_exits_2_with_the_message(tmp_path, capsys, args, words):
    code = app.main(["synth", *args, "--device", "cpu", "--checkpoint-dir", str(tmp_path), "--data-dir",
                     str(tmp_path), *(["-o", str(tmp_path / "out.wav")] if "-o" not in args else [])])
    assert code == 2 and words in capsys.readouterr().err


# The guard in front of the API: body size before reading, rate limit, CORS.

def test_an_oversized_body_is_refused_before_it_is_read():
    sent: list = []

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    async def inner(scope, receive, send):
        raise AssertionError("the request reached the route")

    scope = {"type": "http", "method": "POST", "path": "/api/create_speaker", "client": ("127.0.0.1", 1),
             "headers": [(b"content-length", str(50 * 1024 * 1024).encode())]}
    import anyio

    anyio.run(ApiGuard(inner, LIMITS), scope, receive, send)
    assert sent[0]["status"] == 413 and b"larger than 1 MB" in sent[1]["body"]


def test_rate_limit_counts_per_client_and_says_when_to_retry():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert [limiter.wait_seconds("a"), limiter.wait_seconds("a"), limiter.wait_seconds("b")] == [0, 0, 0]
    assert limiter.wait_seconds("a") == 60
    now[0] = 45.0
    assert limiter.wait_seconds("a") == 15
    now[0] = 60.5
    assert limiter.wait_seconds("a") == 0
    assert RateLimiter(0).wait_seconds("a") == 0


def test_rate_limited_api_answers_429_with_retry_after(engine):
    limited = Settings(rate_limit=2)
    with TestClient(FastAPI(**api.app_kwargs(engine, limited))) as client:
        assert [client.get("/v1/models").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/v1/models")
        assert_error(refused, 429, None)
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert client.get("/health").status_code == 200  # monitors are never limited


def test_cors_is_closed_unless_the_origin_is_configured(http):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = http.options("/v1/audio/speech", headers={"Origin": "http://allowed.example", **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://allowed.example"
    other = http.options("/v1/audio/speech", headers={"Origin": "http://evil.example", **preflight})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    simple = http.get("/v1/models", headers={"Origin": "http://evil.example"})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
    closed = Settings()
    assert ApiGuard(None, closed).origins == set()


# A bounded fuzz of the speech route: whatever the body, the answer is a success or a clean 4xx error.

class InstantEngine:
    """The engine's interface, answering every valid request at once with a short clip (no model)."""

    def __init__(self, library: VoiceLibrary):
        self.library = library
        self.config = EngineConfig(asr_model="off")  # candidates are refused, never a download

    def submit(self, request: SynthesisRequest):
        return InstantJob(request)

    def status(self) -> dict:
        return {"model": None, "device": "cpu", "queue_depth": 0, "busy": False}


class InstantJob:
    id = 1
    seed = 1
    ignored_parameters: list = []
    ignored_tags: list = []

    def __init__(self, request: SynthesisRequest):
        self.request = request

    def __iter__(self):
        yield self.result()

    def result(self) -> AudioChunk:
        return AudioChunk(RATE, np.zeros(480, np.float32))

    def cancel(self) -> None:
        pass


ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30), st.lists(st.integers(), max_size=2),
                      st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
FIELDS = ["model", "input", "text", "voice", "response_format", "speed", "instructions", "stream_format",
          "exaggeration", "cfg_weight", "temperature", "top_p", "min_p", "repetition_penalty", "seed", "language",
          "preset"]
LIKELY = {"input": st.text(string.printable + "é😀\u200b", max_size=60), "response_format": st.sampled_from(
    ["mp3", "wav", "pcm", "flac", "ogg"]), "stream_format": st.sampled_from([None, "audio", "sse", "x"]),
    "voice": st.sampled_from(["alloy", "fr", "../x", "nobody", "", {"id": "alloy"}]),
    "speed": st.floats(0, 5), "seed": st.integers(-1, 2**33)}
BODIES = st.fixed_dictionaries({}, optional={name: st.one_of(ANY_VALUE, LIKELY.get(name, ANY_VALUE))
                                             for name in FIELDS})


@pytest.fixture(scope="module")
def instant(tmp_path_factory) -> TestClient:
    library = VoiceLibrary(tmp_path_factory.mktemp("fuzz-voices"))
    with TestClient(FastAPI(**api.app_kwargs(InstantEngine(library), LIMITS))) as client:
        yield client


@fuzz_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_fuzzed_speech_bodies_get_audio_or_a_clean_client_error(instant, body):
    response = instant.post("/v1/audio/speech", json=body)
    assert response.status_code in (200, 400, 404, 413), response.text
    if response.status_code != 200:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@fuzz_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(voice_id=st.text(min_size=1, max_size=40))
def test_fuzzed_voice_ids_are_found_or_404(instant, voice_id):
    from urllib.parse import quote

    response = instant.get(f"/api/speakers/{quote(voice_id, safe='')}/audio")
    assert response.status_code in (404, 405), response.text


# Schema-driven: every operation in the studio's own OpenAPI document, with paths, queries, bodies and forms made
# from its schema, both fitting it and breaking it.

@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["fitting", "breaking"])
def test_every_route_answers_generated_requests_without_a_server_error(instant, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", instant.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    if mode is GenerationMode.NEGATIVE:  # free-text path parameters cannot break their schema; bodies can
        operations = [op for op in operations if op.body]
        assert len(operations) >= 4

    for operation in operations:
        @fuzz_settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=mode))
        def answers_cleanly(case):
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
            if response.status_code >= 400:
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}, response.text[:300]

        answers_cleanly()
