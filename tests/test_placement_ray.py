"""The Ray Serve placement, for real: one local Ray instance (2 CPUs, no dashboard) with a deployment of two CPU
replicas on the tiny checkpoint, shared by every test here; the kill test runs last, as Serve then restarts a
replica."""

from __future__ import annotations

import os
import signal
import time

from contextlib import contextmanager

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray Serve is optional: requirements-cluster.txt")

from conftest import TEST_CHUNK_TOKENS  # noqa: E402
from dataset import DatasetRun, EngineSpeaker  # noqa: E402
from engine import Ask, Engine, EngineConfig, SynthesisFailed, SynthesisRequest, Voice  # noqa: E402
from engine.placement import PlacementChoice  # noqa: E402
from engine.placement.ray_serve import RayPlacement, ray_init_options  # noqa: E402
from settings import Settings  # noqa: E402

CHOICE = PlacementChoice(replicas=2)
# Ray kills its workers when the machine's memory is 95% used, by anyone: on a shared CI machine that is often others.
NO_RAY_MEMORY_KILLS = {"RAY_memory_monitor_refresh_ms": "0"}
REPLICA_THREADS = 1  # a CPU replica's torch threads: the one CPU Ray gives it
PHRASES = [f"Phrase number {n}." for n in range(4)]


def config_for(checkpoint, data_dir) -> EngineConfig:
    """Exact precision (same seed, same samples) with few flow steps, so that it is quick on a CPU."""
    return EngineConfig(device="cpu", checkpoint_dir=checkpoint, data_dir=data_dir, precision="exact", flow_steps=2,
                        max_chunk_tokens=TEST_CHUNK_TOKENS)


@pytest.fixture(scope="module")
def cluster(tiny_checkpoint, tmp_path_factory):
    """Two CPU replicas on a local Ray instance started here (and shut down after the module)."""
    os.environ.update(NO_RAY_MEMORY_KILLS)
    ray.init(num_cpus=2, **ray_init_options(CHOICE))
    placement = RayPlacement(config_for(tiny_checkpoint, tmp_path_factory.mktemp("ray-data")), CHOICE)
    yield placement
    placement.close()
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tiny_checkpoint, tmp_path_factory):
    """The local placement with the same config, to compare against."""
    engine = Engine(config_for(tiny_checkpoint, tmp_path_factory.mktemp("local-data")))
    yield engine
    engine.close()


def phrases_request(count: int, seed: int = 1, voice: Voice = Voice.builtin()) -> SynthesisRequest:
    """`count` phrases, one chunk each."""
    return SynthesisRequest("\n\n".join(f"Phrase {n} of a long take." for n in range(count)), voice=voice, seed=seed,
                            separate_phrases=True)


@contextmanager
def cpu_threads(count: int):
    """Torch's CPU threads in this process while the block runs: float sums depend on how a CPU splits them."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def wait_for(condition, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def test_both_replicas_serve_and_health_lists_them(cluster):
    jobs = [cluster.submit(SynthesisRequest(f"Hello number {n}.", seed=n)) for n in range(4)]
    clips = [job.result() for job in jobs]
    assert all(clip.duration > 0 for clip in clips)
    served_by = {job.served.replica for job in jobs}
    assert len(served_by) == 2, "Serve routes concurrent requests to both replicas"
    health = wait_for(lambda: (s := cluster.status()) and sum(r["served"] for r in s["replicas"]) >= 4 and s)
    assert health["placement"] == "ray" and health["replica_states"] == {"RUNNING": 2}
    assert {r["replica"] for r in health["replicas"]} == served_by
    assert all(r["state"] == "serving" and r["served"] >= 1 and r["device"] == "cpu" for r in health["replicas"])


def test_chunks_stream_as_made_and_cancel_stops_the_replicas_job(cluster):
    cancelled_before = sum(r["cancelled_jobs"] for r in cluster.replicas())
    job = cluster.submit(phrases_request(8))
    first = next(job.poll(None))
    assert first.index == 0 and first.total == 8
    job.cancel()  # the first chunk came while the replica still had seven to make: it ends that job
    assert wait_for(lambda: sum(r["cancelled_jobs"] for r in cluster.replicas()) == cancelled_before + 1)


def test_fixed_seed_gives_the_local_placements_samples_byte_for_byte(cluster, local, reference_clip):
    request = phrases_request(2, seed=7, voice=Voice(clip=reference_clip))
    remote = cluster.synthesize(request)
    with cpu_threads(REPLICA_THREADS):
        here = local.synthesize(request)
    assert remote.samples.tobytes() == here.samples.tobytes()
    assert cluster.clips_sent <= 2, "each replica asks for a clip once"
    cluster.synthesize(phrases_request(1, seed=8, voice=Voice(clip=reference_clip)))
    assert cluster.clips_sent <= 2


def test_a_dataset_over_both_replicas_matches_the_local_one_and_resumes_after_a_stop(
        cluster, local, reference_clip, tmp_path, monkeypatch):
    monkeypatch.setattr("dataset.runner.PHRASES_PER_REQUEST", 2)  # four phrases make two requests
    composer = Settings().composer(local.config, local.library)
    with cpu_threads(REPLICA_THREADS):
        DatasetRun(tmp_path / "local", "v", seed=3).run(EngineSpeaker(local, composer, Ask("", clip=reference_clip)),
                                                        PHRASES)

    speaker = EngineSpeaker(cluster, composer, Ask("", clip=reference_clip))
    assert speaker.requests_in_flight == 4
    run = DatasetRun(tmp_path / "ray", "v", seed=3)
    made = run.made(speaker, run.pending(PHRASES))
    next(made)
    speaker.stop()  # as the Dataset tab's Stop, or a killed run: what is written stays, the rest is cancelled
    made.close()
    assert wait_for(lambda: cluster.status()["running"] == 0)
    kept = len(run.done())
    assert 1 <= kept < len(PHRASES)

    resumed = DatasetRun(tmp_path / "ray", "v", seed=3)
    summary = resumed.run(EngineSpeaker(cluster, composer, Ask("", clip=reference_clip)), PHRASES)
    assert summary == {**summary, "items": len(PHRASES), "skipped_done": kept, "failures": 0}
    listed = (tmp_path / "ray" / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert sorted(listed) == (tmp_path / "local" / "metadata.csv").read_text(encoding="utf-8").splitlines()
    for name in run.done():
        wav = f"wavs/{name}.wav"
        assert (tmp_path / "ray" / wav).read_bytes() == (tmp_path / "local" / wav).read_bytes()


def test_a_killed_replica_fails_only_its_request_and_the_next_is_served(cluster):
    job = cluster.submit(phrases_request(8))
    chunks = job.poll(None)
    next(chunks)
    os.kill(job.served.pid, signal.SIGKILL)
    with pytest.raises(SynthesisFailed, match="replica serving this request stopped"):
        list(chunks)
    clip = cluster.synthesize(SynthesisRequest("Still here.", seed=5))
    assert clip.duration > 0 and np.isfinite(clip.samples).all()
    assert wait_for(lambda: [r["state"] for r in cluster.replicas()].count("lost") == 1)
