"""`./launch.sh --replicas 2`: the studio (python app.py) serving the desk and the API from two Ray Serve replicas.
A module of its own, so that its Ray instance starts after test_placement_ray's has stopped."""

from __future__ import annotations

import io
import time

import pytest
import requests
import soundfile

pytest.importorskip("ray", reason="Ray Serve is optional: requirements-cluster.txt")

from conftest import running_studio  # noqa: E402
from test_placement_ray import NO_RAY_MEMORY_KILLS  # noqa: E402

TIMEOUT = 300


def test_the_studio_serves_the_desk_and_the_api_from_two_replicas(tiny_checkpoint, tmp_path_factory, reference_clip):
    with running_studio(tiny_checkpoint, tmp_path_factory, "--replicas", "2", **NO_RAY_MEMORY_KILLS) as url:
        assert requests.get(url, timeout=TIMEOUT).ok  # the desk
        voice = requests.post(f"{url}/api/create_speaker", files={"file": ("Anwar.mp3", reference_clip)},
                              timeout=TIMEOUT).json()["id"]  # kept in the studio's library; replicas get the clip
        for _ in range(2):
            speech = requests.post(f"{url}/v1/audio/speech", timeout=TIMEOUT, json={
                "model": "chatterbox", "input": "Hello from a replica.", "voice": voice, "response_format": "wav"})
            assert speech.status_code == 200, speech.text
            assert soundfile.info(io.BytesIO(speech.content)).duration > 0
        deadline = time.monotonic() + 30
        while (health := requests.get(f"{url}/health", timeout=TIMEOUT).json()) and time.monotonic() < deadline:
            if sum(replica["served"] for replica in health["replicas"]) == 2:
                break
            time.sleep(1)
        assert health["placement"] == "ray" and health["replica_states"] == {"RUNNING": 2}
        assert [replica["state"] for replica in health["replicas"]] == ["serving", "serving"]
        assert sum(replica["served"] for replica in health["replicas"]) == 2
