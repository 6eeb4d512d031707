"""Requests that wait together are sampled together: with a request batch above one, the engine's worker takes the
next chunks of every running request into one T3 batch, then vocodes each request's own chunks and hands each
request its own audio, in order. One request's bad voice or cancellation leaves the others running."""

import threading
import time

import numpy as np
import pytest

from conftest import engine_on_cpu
from engine import Cancelled, InvalidAudio, ModelUnavailable, SynthesisRequest, Voice, audio
from engine.decoding.acceleration import CUDA_REQUEST_BATCH, plan

LIMIT = 6


@pytest.fixture(scope="module")
def batching(tiny_checkpoint, tmp_path_factory):
    yield from engine_on_cpu(tmp_path_factory, tiny_checkpoint, batch_requests=4)


@pytest.fixture
def held(batching, monkeypatch):
    """A request of two chunks (seed 1), its first held in its T3 batch until `release` is set, so that requests
    submitted meanwhile queue behind it; and the seeds of the requests in each T3 batch."""
    original, batches, release = batching.synthesizer.sample, [], threading.Event()

    def sample(syntheses):
        batches.append(sorted(synthesis.request.seed for synthesis in syntheses))
        if len(batches) == 1:
            release.wait(timeout=60)
        return original(syntheses)

    monkeypatch.setattr(batching.synthesizer, "sample", sample)
    blocker = batching.submit(ask("Hold the worker.\n\nThen let go.", 1))
    while not batches:
        time.sleep(0.01)
    yield batches, release
    release.set()
    blocker.result()


def ask(text: str, seed: int, **fields) -> SynthesisRequest:
    return SynthesisRequest(text, seed=seed, max_tokens_per_chunk=LIMIT, **fields)


def test_requests_join_a_running_one_and_each_gets_its_own_chunks(batching, held, reference_clip):
    batches, release = held
    waiting = [batching.submit(ask("First of two.\n\nSecond of two.", 2)),
               batching.submit(ask("Another voice.", 3, voice=Voice(clip=reference_clip)))]
    assert batching.status()["running"] == 1 and batching.status()["queue_depth"] == 2
    release.set()
    two_chunks, one_chunk = ([chunk.text for chunk in job] for job in waiting)
    assert batches == [[1], [1, 2, 3], [2]]
    assert two_chunks == ["First of two.", "Second of two."] and one_chunk == ["Another voice."]


def test_a_bad_voice_or_a_cancellation_leaves_the_batch_mates_running(batching, held):
    batches, release = held
    silent = Voice(clip=audio.encode(np.zeros(24000 * 3, dtype=np.float32), 24000, "wav"))
    refused = batching.submit(ask("Silent voice.", 4, voice=silent))
    cancelled = batching.submit(ask("One.\n\nTwo.\n\nThree.", 5))
    kept = batching.submit(ask("Kept one.\n\nKept two.", 6))
    release.set()
    with pytest.raises(InvalidAudio):
        refused.result()
    chunks = iter(cancelled)
    next(chunks)
    cancelled.cancel()
    with pytest.raises(Cancelled):
        list(chunks)
    assert [chunk.index for chunk in kept] == [0, 1]
    assert batches[1] == [1, 5, 6]


def test_requests_are_batched_by_default_only_where_it_pays_and_never_in_the_exact_precision():
    assert plan("fast", "cuda").request_batch == CUDA_REQUEST_BATCH
    assert plan("fast", "cpu").request_batch == 1
    assert plan("fast", "cpu", request_batch=4).batch_prompts == 4
    assert plan("exact", "cuda", request_batch=8).request_batch == 1


def test_a_request_for_another_model_waits_until_the_running_ones_are_done(batching, held):
    """The request after it waits too, in order; this checkpoint has no Turbo weights, so the Turbo request fails
    with a clear error and the English model stays loaded."""
    batches, release = held
    other_model = batching.submit(ask("Turbo, please.", 7, model="chatterbox-turbo"))
    after_it = batching.submit(ask("English again.", 8))
    release.set()
    assert [chunk.text for chunk in after_it] == ["English again."]
    with pytest.raises(ModelUnavailable):
        other_model.result()
    assert batches == [[1], [1], [8]]
