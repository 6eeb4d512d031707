"""Fixtures built once per test session: the tiny random checkpoint, an engine on it, a running studio."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# S3Gen runs in torch in the suite's engines and studios: on ONNX Runtime each checkpoint's S3Gen would first be
# exported (about 10 s each on a fresh machine). tests/test_onnx_cpu.py checks ONNX Runtime's parts against torch's
# and runs a whole CLI synthesis with it on.
os.environ["CHATTERBOX_ONNX"] = "off"

from engine import Engine, EngineConfig  # noqa: E402
from tools import random_checkpoint, random_whisper  # noqa: E402

# Random weights never sample the stop token, so every chunk runs to its budget: keep budgets small.
TEST_CHUNK_TOKENS = 30


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    """A 2-layer-T3 checkpoint with full-size S3Gen and voice encoder, in Chatterbox's file layout."""
    return random_checkpoint.cached("tiny-t3-2layer", t3_layers=2, t3_mlp=1024)


def engine_on_cpu(tmp_path_factory, checkpoint: Path, **config) -> Iterator[Engine]:
    """A fixture's engine: on the CPU, with a data folder of its own, closed when the fixture ends."""
    engine = Engine(EngineConfig(device="cpu", checkpoint_dir=checkpoint, data_dir=tmp_path_factory.mktemp("data"),
                                 **config))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def engine(tiny_checkpoint, tmp_path_factory) -> Iterator[Engine]:
    yield from engine_on_cpu(tmp_path_factory, tiny_checkpoint, max_chunk_tokens=TEST_CHUNK_TOKENS, queue_size=4)


@pytest.fixture(scope="session")
def turbo_checkpoint() -> Path:
    """Turbo's file layout: a 2-layer GPT-2 T3, its byte-level tokenizer, S3Gen's meanflow weights; a 6 s voice."""
    return random_checkpoint.cached("tiny-turbo-2layer", variant="chatterbox-turbo", t3_layers=2, voice_seconds=6.0)


@pytest.fixture(scope="session")
def turbo(turbo_checkpoint, tmp_path_factory) -> Iterator[Engine]:
    """Turbo in the exact precision: upstream's own token loop."""
    yield from engine_on_cpu(tmp_path_factory, turbo_checkpoint, model="chatterbox-turbo", precision="exact")


@pytest.fixture(scope="session")
def nano_checkpoint() -> Path:
    """Nano's file layout (Turbo's with t3_nano_v1.safetensors): a 2-layer GPT-2 small T3; a 6 s voice."""
    return random_checkpoint.cached("tiny-nano-2layer", variant="chatterbox-nano", t3_layers=2, voice_seconds=6.0)


@pytest.fixture(scope="session")
def v3_checkpoint() -> Path:
    """Multilingual V3's file layout (V2's with t3_mtl23ls_v3.safetensors): a 2-layer T3, which V3 can have since
    it watches no attention heads."""
    return random_checkpoint.cached("tiny-mtl-v3-2layer", variant="chatterbox-multilingual-v3", t3_layers=2)


def capped(owner, method: str, keyword: str, limit: int, monkeypatch) -> list:
    """Cap `owner.method`'s token limit argument at `limit` and record the tokens it returns."""
    original, recorded = getattr(owner, method), []

    def call(*args, **kwargs):
        kwargs[keyword] = min(kwargs.get(keyword, 1000), limit)
        tokens = original(*args, **kwargs)
        recorded.append(tokens.clone())
        return tokens

    monkeypatch.setattr(owner, method, call)
    return recorded


def upstream_turbo_audio(upstream, text: str, seed: int, limit: int, monkeypatch):
    """What upstream Turbo's own `generate` says for `text` from `seed`, its T3 stopped after `limit` tokens."""
    import torch

    recorded = capped(upstream.t3, "inference_turbo", "max_gen_len", limit - 1, monkeypatch)
    torch.manual_seed(seed)
    wav = upstream.generate(text).squeeze(0).numpy()
    assert recorded[0].numel() == limit
    return wav


@pytest.fixture(scope="session")
def tiny_whisper() -> Path:
    """A 2-layer random Whisper in faster-whisper's folder layout, converted by CTranslate2's own converter."""
    return random_whisper.cached()


@pytest.fixture(scope="session")
def reference_clip() -> bytes:
    """Three seconds of a voice-like signal, as an mp3 file's bytes."""
    from engine import audio

    return audio.encode(random_checkpoint.synthetic_voice(3.0, seed=11), 24000, "mp3")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def studio_env(**extra: str) -> dict:
    env = {**os.environ, "CHATTERBOX_MAX_CHUNK_TOKENS": str(TEST_CHUNK_TOKENS), "PYTHONUNBUFFERED": "1",
           "CHATTERBOX_ASR_MODEL": "off"}  # never a download: a test that checks takes names its recognizer
    env.update(extra)
    return env


@contextmanager
def running_studio(checkpoint: Path, tmp_path_factory, *flags: str, **env: str) -> Iterator[str]:
    """`python app.py` on a free loopback port with `flags` and `env`; yields its base URL, stops it (SIGTERM)
    afterwards."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("studio-data")
    log_path = tmp_path_factory.mktemp("studio-log") / "studio.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--no-browser", "--port", str(port), "--device", "cpu",
             "--checkpoint-dir", str(checkpoint), "--data-dir", str(data_dir), *flags],
            cwd=ROOT, env=studio_env(**env), stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The studio exited early:\n{log_path.read_text()}")
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError(f"The studio did not come up in 120 s:\n{log_path.read_text()}")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def idle_health(studio: str) -> dict:
    """/health once the engine has nothing running."""
    while (health := requests.get(f"{studio}/health", timeout=10).json())["busy"]:
        time.sleep(0.2)
    return health


@pytest.fixture(scope="session")
def wyoming_port() -> int:
    """The port of the shared studio's Wyoming server."""
    return free_port()


def save_voice(studio: str, clip: bytes, filename: str, name: str, language: str = "en") -> str:
    """A voice saved to the running studio's library through the API; its id."""
    response = requests.post(f"{studio}/api/create_speaker", files={"file": (filename, clip)},
                             data={"name": name, "language": language}, timeout=600)
    assert response.status_code == 200, response.text
    return response.json()["id"]


# A web page's origin the shared studio lets call its API (SillyTavern's own address by default).
BROWSER_ORIGIN = "http://localhost:8000"


@pytest.fixture(scope="session")
def studio(tiny_checkpoint, tmp_path_factory, wyoming_port) -> Iterator[str]:
    """The real studio (`python app.py`) on a loopback port with the tiny checkpoint, its Wyoming server on
    `wyoming_port`, and BROWSER_ORIGIN allowed by CORS; yields its base URL."""
    with running_studio(tiny_checkpoint, tmp_path_factory, "--wyoming", "--wyoming-port", str(wyoming_port),
                        "--cors-origins", BROWSER_ORIGIN) as url:
        yield url
