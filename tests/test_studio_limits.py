"""One studio started with a key and tight limits (`--api-key`, `--queue-size 1`, `--idle-unload-seconds`,
`--cors-origins`, `--max-upload-mb 1`): the key gates API and UI, a burst of mixed clients is served or refused
with Retry-After, oversized bodies are refused unread, and the idle model unloads and comes back."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlparse

import pytest
import requests

from conftest import ROOT, running_studio

KEY = "test-key-5093"
AUTH = {"Authorization": f"Bearer {KEY}"}
IDLE_SECONDS = 4
TIMEOUT = 600
CLIENTS = 16  # concurrent requests in the burst: plain, streamed, events, cloned and desk, in turn


@pytest.fixture(scope="module")
def keyed(tiny_checkpoint, tmp_path_factory) -> str:
    with running_studio(tiny_checkpoint, tmp_path_factory, "--api-key", KEY, "--queue-size", "1",
                        "--idle-unload-seconds", str(IDLE_SECONDS), "--cors-origins", "http://allowed.example",
                        "--max-upload-mb", "1") as url:
        yield url


def test_the_key_gates_the_api_and_the_desk(keyed):
    assert requests.get(f"{keyed}/v1/models", timeout=30).status_code == 401
    assert requests.get(f"{keyed}/v1/models", headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401
    assert requests.get(f"{keyed}/v1/models", headers=AUTH, timeout=30).status_code == 200
    assert requests.get(f"{keyed}/health", timeout=30).json()["status"] == "ok"
    assert requests.get(f"{keyed}/config", timeout=30).status_code == 401  # the desk wants a login
    session = requests.Session()
    assert session.post(f"{keyed}/login", data={"username": "me", "password": "wrong"}, timeout=30).status_code == 400
    assert session.post(f"{keyed}/login", data={"username": "me", "password": KEY}, timeout=30).ok
    assert session.get(f"{keyed}/config", timeout=30).json()["title"] == "Chatterbox Studio"

    from gradio_client import Client

    assert Client(keyed, auth=("me", KEY), verbose=False).predict(api_name="/voices") == []
    with pytest.raises(Exception):
        Client(keyed, verbose=False)


def test_cors_allows_only_the_configured_origin(keyed):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = requests.options(f"{keyed}/v1/audio/speech", timeout=30,
                               headers={"Origin": "http://allowed.example", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == "http://allowed.example"
    other = requests.options(f"{keyed}/v1/audio/speech", timeout=30, headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    simple = requests.get(f"{keyed}/v1/models", headers={**AUTH, "Origin": "http://evil.example"}, timeout=30)
    assert simple.ok and "access-control-allow-origin" not in simple.headers


def test_an_oversized_upload_is_refused_before_it_is_sent(keyed):
    address = urlparse(keyed)
    with socket.create_connection((address.hostname, address.port), timeout=30) as raw:
        raw.sendall(f"POST /api/create_speaker HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {KEY}\r\n"
                    f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {500 * 1024 * 1024}\r\n\r\n"
                    .encode())
        answer = b""
        while piece := raw.recv(65536):  # answered, and closed, with no body byte sent
            answer += piece
    answer = answer.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413") and "larger than 1 MB" in answer


def test_an_upload_sent_in_chunks_is_refused_once_it_passes_the_limit(keyed):
    """No Content-Length to check up front: the body is counted as it arrives, and the route never sees it."""
    address = urlparse(keyed)
    saved_before = requests.get(f"{keyed}/api/speakers", headers=AUTH, timeout=30).json()["speakers"]
    piece = b"x" * 65536
    with socket.create_connection((address.hostname, address.port), timeout=30) as raw:
        raw.sendall(f"POST /api/create_speaker HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {KEY}\r\n"
                    f"Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        raw.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        answer = b""
        try:
            for _ in range(2 * 1024 * 1024 // len(piece)):  # 2 MB offered, past the 1 MB limit
                raw.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                raw.settimeout(0.01)
                try:
                    answer += raw.recv(65536)
                except TimeoutError:
                    pass
                raw.settimeout(30)
                if answer:
                    break
            while piece := raw.recv(65536):
                answer += piece
        except (BrokenPipeError, ConnectionResetError):  # the studio answered and closed mid-upload
            pass
    answer = answer.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413") and "larger than 1 MB" in answer, answer[:300]
    assert requests.get(f"{keyed}/api/speakers", headers=AUTH, timeout=30).json()["speakers"] == saved_before


def test_file_serving_reaches_no_project_or_library_file(keyed):
    session = requests.Session()
    session.post(f"{keyed}/login", data={"username": "me", "password": KEY}, timeout=30)
    for path in (ROOT / "app.py", ROOT / "README.md", "/etc/passwd"):
        assert session.get(f"{keyed}/gradio_api/file={path}", timeout=30).status_code in (403, 404)


def _plain(url: str, n: int, clip: bytes) -> requests.Response:
    return requests.post(f"{url}/v1/audio/speech", headers=AUTH, json={"input": "Hi.", "seed": n}, timeout=TIMEOUT)


def _streamed(url: str, n: int, clip: bytes) -> requests.Response:
    response = requests.post(f"{url}/v1/audio/speech", headers=AUTH, stream=True, timeout=TIMEOUT,
                             json={"input": "Hi.", "response_format": "pcm", "stream_format": "audio"})
    response.content  # read it all
    return response


def _events(url: str, n: int, clip: bytes) -> requests.Response:
    response = requests.post(f"{url}/v1/audio/speech", headers=AUTH, stream=True, timeout=TIMEOUT,
                             json={"input": "Hi.", "response_format": "pcm", "stream_format": "sse"})
    if response.ok:
        events = [json.loads(line) for line in response.content.split(b"data: ") if line.strip()]
        assert events[-1]["type"] == "speech.audio.done"
    return response


def _cloned(url: str, n: int, clip: bytes) -> requests.Response:
    return requests.post(f"{url}/v2/audio/speech_with_prompt", headers=AUTH, timeout=TIMEOUT,
                         files={"audio_prompt": ("ref.mp3", clip)}, data={"input": "Hi.", "response_format": "wav"})


def test_a_burst_of_mixed_clients_is_served_or_refused_with_retry_after(keyed, reference_clip, tmp_path):
    from gradio_client import Client

    desk = Client(keyed, auth=("me", KEY), verbose=False)
    kinds = [_plain, _streamed, _events, _cloned]
    outcomes: dict[int, str] = {}
    desk_jobs = []

    def client(n: int) -> None:
        response = kinds[n % len(kinds)](keyed, n, reference_clip)
        if response.status_code == 200:
            assert response.content
            outcomes[n] = "served"
        else:
            assert response.status_code in (429, 503) and int(response.headers["retry-after"]) > 0, response.text
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
            outcomes[n] = "refused"

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for n in range(2):
        desk_jobs.append(desk.submit(text="Hi.", reference=None, voice_id="", api_name="/synthesize"))
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    desk_outcomes = []
    for job in desk_jobs:
        try:
            desk_outcomes.append("served" if job.result(timeout=TIMEOUT)[0].endswith(".wav") else "odd")
        except Exception as error:  # a full queue is a readable refusal on the desk
            assert "busy" in str(error).lower() or "queue" in str(error).lower(), error
            desk_outcomes.append("refused")
    assert len(outcomes) == CLIENTS and "odd" not in desk_outcomes  # every request got a definite answer
    assert list(outcomes.values()).count("served") >= 1 and "refused" in outcomes.values()
    health = requests.get(f"{keyed}/health", timeout=30).json()
    assert health["status"] == "ok" and health["queue_depth"] == 0 and not health["busy"]
    print(f"burst: {list(outcomes.values()).count('served')} served, {list(outcomes.values()).count('refused')} "
          f"refused over HTTP; desk {desk_outcomes}; {time.monotonic() - started:.1f} s")


def test_idle_model_unloads_and_the_next_request_loads_it_again(keyed):
    """The burst above loaded the model; with nothing to do it unloads after IDLE_SECONDS."""
    if requests.get(f"{keyed}/health", timeout=30).json()["model"] is None:  # run alone: load it first
        requests.post(f"{keyed}/v1/audio/speech", headers=AUTH, json={"input": "Hi."}, timeout=TIMEOUT)
    deadline = time.monotonic() + 60
    while (health := requests.get(f"{keyed}/health", timeout=30).json())["model"] is not None:
        assert time.monotonic() < deadline, health
        time.sleep(0.5)
    assert "unloaded" in health["message"]
    again = requests.post(f"{keyed}/v1/audio/speech", headers=AUTH, json={"input": "Hi."}, timeout=TIMEOUT)
    assert again.status_code == 200 and again.content
    assert requests.get(f"{keyed}/health", timeout=30).json()["model"] == "chatterbox"
