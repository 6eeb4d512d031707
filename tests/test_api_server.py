"""The HTTP API on the real studio (`python app.py`, tiny checkpoint), driven by real clients.

Every synthesis costs seconds here, so each test that synthesizes checks several things at once.
"""

from __future__ import annotations

import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import openai
import pytest
import requests
from websockets.sync.client import connect

from conftest import idle_health
from engine import audio

RATE = 24000
# With at most 30 speech tokens per chunk (tests/conftest.py) one chunk is at most 1.2 s of audio; random
# weights make some invalid tokens that are dropped, so a chunk can be shorter.
CHUNK_SECONDS = 1.2
SHORTEST = 0.3
# The machine may be shared and slow: a synthesis that takes 4 s alone can take a minute.
TIMEOUT = 600
TWO_SENTENCES = "The first sentence is here. The second one follows it."


def measure(data: bytes, fmt: str) -> tuple[int, float]:
    """(the file's own sample rate, its duration in seconds), decoded back from the bytes."""
    if fmt == "pcm":
        return RATE, len(np.frombuffer(data, "<i2")) / RATE
    with av.open(io.BytesIO(data)) as container:
        rate = container.streams.audio[0].rate
    return rate, len(audio.decode(data, RATE)) / RATE


def assert_error(response: requests.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param:
        assert error["param"] == param
    return error


@pytest.fixture(scope="module")
def client(studio) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{studio}/v1", api_key="x", max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def library_voice(studio, reference_clip) -> str:
    """A voice created through /api/create_speaker; its id comes from the uploaded file's name."""
    response = requests.post(f"{studio}/api/create_speaker", files={"file": ("Anwar Ibrahim!.mp3", reference_clip)},
                             data={"name": "Anwar Ibrahim", "language": "en", "settings": '{"exaggeration": 0.6}'},
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    voice = response.json()
    assert voice["id"] == "Anwar_Ibrahim.mp3" and voice["name"] == "Anwar Ibrahim" and not voice["temporary"]
    return voice["id"]


def test_openai_sdk_speech_is_playable_mp3(client):
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    assert speech.response.headers["content-type"] == "audio/mpeg"
    rate, seconds = measure(speech.content, "mp3")
    assert rate == RATE and SHORTEST < seconds <= CHUNK_SECONDS + 0.1


@pytest.mark.parametrize("fmt, extra, expected_rate, seconds_range", [
    ("opus", {"voice": "echo", "preset": "calm", "seed": 7}, 48000, (SHORTEST, 1.5)),  # calm is 0.9x speed
    ("aac", {"voice": "en", "instructions": "0.9"}, RATE, (SHORTEST, 1.4)),
    ("flac", {"model": "chatterbox", "temperature": 0.7, "top_p": 0.9}, RATE, (SHORTEST, 1.3)),
    ("wav", {"speed": 2.0}, RATE, (0.1, 0.65)),  # at most half of 1.2 s
    ("pcm", {"model": "gpt-4o-mini-tts", "exaggeration": 1.0, "cfg_weight": 0.3}, RATE, (SHORTEST, 1.3)),
])
def test_every_format_decodes(studio, fmt, extra, expected_rate, seconds_range):
    response = requests.post(f"{studio}/v1/audio/speech", json={"input": "Hello.", "response_format": fmt, **extra},
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(audio.FORMATS[fmt][0])
    assert int(response.headers["x-seed"]) >= 0
    rate, seconds = measure(response.content, fmt)
    assert rate == expected_rate and seconds_range[0] < seconds < seconds_range[1]


def test_streamed_audio_arrives_while_later_sentences_are_made(client):
    arrivals: list[tuple[float, int]] = []
    data = b""
    with client.audio.speech.with_streaming_response.create(
        model="chatterbox", voice="nova", input=TWO_SENTENCES, response_format="mp3", stream_format="audio",
    ) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        for piece in response.iter_bytes():
            arrivals.append((time.monotonic(), len(piece)))
            data += piece
    # The first sentence's bytes came, then the second sentence took a whole synthesis to follow.
    assert len(arrivals) >= 2 and arrivals[-1][0] - arrivals[0][0] > 1.0
    rate, seconds = measure(data, "mp3")
    assert rate == RATE and seconds > 2 * SHORTEST


def test_sse_deltas_come_before_the_job_finishes(studio):
    events: list[tuple[float, dict]] = []
    with requests.post(f"{studio}/v1/audio/speech", stream=True, timeout=TIMEOUT,
                       json={"input": TWO_SENTENCES, "response_format": "pcm", "stream_format": "sse"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(b"data: "):
                events.append((time.monotonic(), json.loads(line[6:])))
    deltas = [(t, e) for t, e in events if e["type"] == "speech.audio.delta"]
    done_at, done = events[-1]
    assert done["type"] == "speech.audio.done" and done["usage"]["input_tokens"] == len(TWO_SENTENCES)
    assert done["usage"]["total_tokens"] == done["usage"]["input_tokens"] + done["usage"]["output_tokens"]
    assert done_at - deltas[0][0] > 1.0  # the first audio came a whole sentence's synthesis before the end
    samples = np.frombuffer(b"".join(base64.b64decode(e["audio"]) for _, e in deltas), "<i2")
    assert len(samples) / RATE > 2 * SHORTEST


def test_client_disconnect_cancels_the_rest(studio):
    text = " ".join(f"Sentence number {n} is here." for n in range(5))
    cancelled_before = idle_health(studio)["cancelled_jobs"]
    with requests.post(f"{studio}/api/generate_tts_stream", json={"text": text, "response_format": "pcm"},
                       stream=True, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        next(response.iter_content(chunk_size=None))
    assert idle_health(studio)["cancelled_jobs"] == cancelled_before + 1  # it stopped before its last sentence


def test_a_client_that_hangs_up_before_its_whole_file_is_ready_cancels_it(studio):
    text = " ".join(f"Sentence number {n} is here." for n in range(8))
    cancelled_before = idle_health(studio)["cancelled_jobs"]
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{studio}/v1/audio/speech", json={"input": text, "response_format": "wav"}, timeout=(30, 1.5))
    assert idle_health(studio)["cancelled_jobs"] == cancelled_before + 1


def test_clone_in_one_call(studio, reference_clip):
    response = requests.post(f"{studio}/v2/audio/speech_with_prompt", timeout=TIMEOUT, files={
        "audio_prompt": ("ref.mp3", reference_clip)}, data={
        "input": "Hello.", "response_format": "wav", "cfg_weight": "0.4", "exaggeration": "0.7", "language": "en"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    rate, seconds = measure(response.content, "wav")
    assert rate == RATE and seconds > SHORTEST


def test_clone_rejects_a_clip_that_is_not_audio(studio):
    response = requests.post(f"{studio}/v2/audio/speech_with_prompt", timeout=TIMEOUT,
                             files={"audio_prompt": ("ref.wav", b"not audio at all")}, data={"input": "Hello."})
    assert_error(response, 400, "voice")


def test_library_voice_speaks_through_the_openai_sdk(client, studio, library_voice, reference_clip):
    listed = requests.get(f"{studio}/api/speakers", timeout=10).json()["speakers"]
    assert {"id": library_voice, "name": "Anwar Ibrahim"}.items() <= next(
        s for s in listed if s["id"] == library_voice).items()
    assert requests.get(f"{studio}/api/speakers/{library_voice}/audio", timeout=10).content == reference_clip
    voices = client.with_options().get("/audio/voices", cast_to=object)
    assert {"id": library_voice, "name": "Anwar Ibrahim"} in voices["voices"]
    speech = client.audio.speech.create(model="chatterbox", voice=library_voice, input="Hello.", response_format="wav")
    rate, seconds = measure(speech.content, "wav")
    assert rate == RATE and seconds > SHORTEST


def test_voice_object_form_and_temporary_voices(studio, reference_clip):
    created = requests.post(f"{studio}/api/create_speaker", files={"file": ("../../etc/passwd", reference_clip)},
                            data={"temporary": "true"}, timeout=TIMEOUT).json()
    assert created["id"] == "passwd.wav" and created["temporary"] and created["expires_at"]
    again = requests.post(f"{studio}/api/create_speaker", files={"file": ("passwd.wav", reference_clip)}, timeout=TIMEOUT)
    assert again.json()["id"] == "passwd_2.wav"
    for voice_id in ("passwd.wav", "passwd_2.wav"):
        assert requests.delete(f"{studio}/api/speakers/{voice_id}", timeout=10).json()["deleted"]
    gone = requests.post(f"{studio}/v1/audio/speech", json={"input": "Hi.", "voice": {"id": "passwd.wav"}}, timeout=30)
    assert_error(gone, 404, "voice")
    assert_error(requests.get(f"{studio}/api/speakers/passwd.wav/audio", timeout=10), 404)
    assert_error(requests.get(f"{studio}/api/speakers/..%5Cdata/audio", timeout=10), 404)
    assert_error(requests.delete(f"{studio}/api/speakers/.hidden", timeout=10), 404)
    silent = requests.post(f"{studio}/api/create_speaker", timeout=TIMEOUT,
                           files={"file": ("quiet.wav", audio.encode(np.zeros(RATE * 3, np.float32), RATE, "wav"))})
    assert_error(silent, 400, "voice")


def test_one_voice_created_deleted_and_fetched_at_once_is_whole_or_absent(studio, reference_clip):
    ids = ["race.mp3", "race_2.mp3", "race_3.mp3"]

    def create(n: int) -> requests.Response:
        return requests.post(f"{studio}/api/create_speaker", files={"file": ("race.mp3", reference_clip)},
                             data={"name": f"race {n}"}, timeout=TIMEOUT)

    def delete(n: int) -> requests.Response:
        return requests.delete(f"{studio}/api/speakers/{ids[n % len(ids)]}", timeout=TIMEOUT)

    def fetch(n: int) -> requests.Response:
        return requests.get(f"{studio}/api/speakers/{ids[n % len(ids)]}/audio", timeout=TIMEOUT)

    with ThreadPoolExecutor(max_workers=9) as pool:
        calls = [(kind, pool.submit(kind, n)) for n in range(6) for kind in (create, delete, fetch)]
        answers = [(kind, future.result()) for kind, future in calls]
    for kind, answer in answers:
        assert answer.status_code in ((200,) if kind is create else (200, 404)), answer.text
        if kind is fetch and answer.status_code == 200:
            assert answer.content == reference_clip  # never a half-written clip
    left = [v for v in requests.get(f"{studio}/api/speakers", timeout=10).json()["speakers"]
            if v["name"].startswith("race ")]
    for voice in left:
        assert requests.get(f"{studio}/api/speakers/{voice['id']}/audio", timeout=10).content == reference_clip
        assert requests.delete(f"{studio}/api/speakers/{voice['id']}", timeout=10).status_code == 200


def test_websocket_streams_chunks_progress_and_done(studio):
    with connect(f"{studio.replace('http', 'ws', 1)}/ws/tts", open_timeout=30) as socket:
        socket.send(json.dumps({"input": "Hello.", "voice": "alloy", "response_format": "pcm", "seed": 3}))
        audio_bytes, events = b"", []
        while not events or events[-1]["type"] not in ("done", "error"):
            message = socket.recv(timeout=TIMEOUT)
            if isinstance(message, bytes):
                audio_bytes += message
            else:
                events.append(json.loads(message))
        assert events[0] == {"type": "progress", "chunk": 1, "total": 1, "seconds": pytest.approx(events[-1]["seconds"])}
        assert events[-1]["type"] == "done" and events[-1]["seed"] == 3 and events[-1]["sample_rate"] == RATE
        assert len(np.frombuffer(audio_bytes, "<i2")) / RATE == pytest.approx(events[-1]["seconds"], abs=0.01)
        socket.send(json.dumps({"input": "Hello.", "speed": 9}))
        error = json.loads(socket.recv(timeout=30))
        assert error["type"] == "error" and error["status"] == 400 and error["error"]["param"] == "speed"
        socket.send("not json")
        assert json.loads(socket.recv(timeout=30))["status"] == 400


def test_openai_sdk_errors(client):
    with pytest.raises(openai.NotFoundError) as unknown_model:
        client.audio.speech.create(model="tts-9", voice="alloy", input="Hello.")
    assert unknown_model.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError) as unknown_voice:
        client.audio.speech.create(model="tts-1", voice="nobody.wav", input="Hello.")
    assert unknown_voice.value.body["param"] == "voice"
    with pytest.raises(openai.BadRequestError) as bad_speed:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", speed=9)
    assert bad_speed.value.body["param"] == "speed"
    with pytest.raises(openai.APIStatusError) as too_long:
        client.audio.speech.create(model="tts-1", voice="alloy", input="a" * 4097)
    assert too_long.value.status_code == 413 and too_long.value.body["param"] == "input"


def test_http_errors_keep_the_openai_shape(studio):
    speech = f"{studio}/v1/audio/speech"
    assert_error(requests.post(speech, json={"voice": "alloy"}, timeout=10), 400, "input")
    assert_error(requests.post(speech, json={"input": "Hi.", "response_format": "ogg"}, timeout=10), 400,
                 "response_format")
    assert_error(requests.post(speech, json={"input": "Hi.", "preset": "loud"}, timeout=10), 404, "preset")
    assert_error(requests.post(speech, json={"input": "Hi.", "response_format": "flac", "stream_format": "sse"},
                               timeout=10), 400, "response_format")
    assert_error(requests.post(speech, json={"input": "!!!"}, timeout=30), 400, "input")
    assert_error(requests.get(speech, timeout=10), 405)
    assert_error(requests.get(f"{studio}/v1/models/whisper-1", timeout=10), 404, "model")
    unavailable = requests.post(speech, json={"input": "Bonjour.", "voice": "fr"}, timeout=TIMEOUT)
    assert_error(unavailable, 503)  # the tiny checkpoint has no multilingual weights
    assert unavailable.headers["x-should-retry"] == "false"


def test_catalog_routes(studio, client):
    models = client.models.list()
    assert {"chatterbox", "chatterbox-multilingual", "chatterbox-turbo", "tts-1"} <= {m.id for m in models.data}
    assert client.models.retrieve("chatterbox-turbo").owned_by == "resemble-ai"
    assert {"id": "chatterbox"} in requests.get(f"{studio}/v1/audio/models", timeout=10).json()["models"]
    health = requests.get(f"{studio}/health", timeout=10).json()
    assert health["status"] == "ok" and health["model"] == "chatterbox" and health["device"] == "cpu"
    assert health["queue_depth"] == 0
    assert requests.get(f"{studio}/docs", timeout=10).status_code == 200
    paths = requests.get(f"{studio}/openapi.json", timeout=10).json()["paths"]
    assert {"/v1/audio/speech", "/v2/audio/speech_with_prompt", "/api/create_speaker"} <= set(paths)
