"""The ZeroGPU placement with the real `spaces` package, off a Space: its decorator then runs the function as is,
so the inline synthesis runs here on the CPU, through the same code a ZeroGPU Space runs."""

from __future__ import annotations

import functools

import pytest

# Imported before any test sets SPACES_ZERO_GPU: `spaces` reads it once, at import, and off a Space stays a no-op.
spaces = pytest.importorskip("spaces", reason="spaces is a test requirement (requirements-test.txt)")

from engine import SynthesisRequest, Voice  # noqa: E402
from engine.placement import build_placement, on_zero_gpu  # noqa: E402
from engine.placement.zerogpu import MAX_GPU_SECONDS, ZeroGpuPlacement, gpu_seconds  # noqa: E402

REAL_GPU = spaces.GPU
MODEL_CALLS = ("conditionals", "t3_conditioning", "text_tokens", "speech_tokens", "vocode")


class RecordingGPU:
    """Test double around the real `spaces.GPU`: decorates as it does, and notes the durations asked and whether
    a decorated function is running."""

    def __init__(self):
        self.durations: list[int] = []
        self.inside = False

    def __call__(self, task=None, *, duration=None):
        def decorate(function):
            real = REAL_GPU(function, duration=duration)

            @functools.wraps(function)
            def recorded(*args):
                self.durations.append(duration(*args))
                self.inside = True
                try:
                    yield from real(*args)
                finally:
                    self.inside = False

            return recorded

        return decorate


@pytest.fixture(scope="module")
def gpu():
    return RecordingGPU()


@pytest.fixture(scope="module")
def zerogpu(engine, gpu):
    """The placement app.py builds on a simulated ZeroGPU Space (SPACES_ZERO_GPU set, `spaces` already imported off
    one), on the shared engine's config, its `spaces.GPU` recorded, and every model call it makes noted with whether
    it ran inside the decorated function."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SPACES_ZERO_GPU", "true")
    patch.setattr(spaces, "GPU", gpu)
    placement = build_placement(engine.config)
    placement.calls = []
    yield placement
    patch.undo()


@pytest.fixture
def noted(zerogpu, gpu):
    """The placement with its model's calls noted."""
    patch = pytest.MonkeyPatch()
    model = zerogpu.synthesizer.model
    zerogpu.calls.clear()
    for name in MODEL_CALLS:
        patch.setattr(model, name, noting(zerogpu.calls, name, getattr(model, name), gpu))
    yield zerogpu
    patch.undo()


def noting(calls: list, name: str, method, gpu: RecordingGPU):
    def noted(*args, **kwargs):
        calls.append((name, gpu.inside))
        return method(*args, **kwargs)

    return noted


def test_start_up_on_a_simulated_zerogpu_space_loads_the_model_eagerly(zerogpu):
    assert on_zero_gpu() and isinstance(zerogpu, ZeroGpuPlacement)
    assert zerogpu.status()["model"] == "chatterbox" and zerogpu.status()["placement"] == "zerogpu"
    assert zerogpu.request_batch == 1  # Gradio's queue runs one synthesis at a time


def test_the_inline_placement_gives_the_local_placements_audio_for_the_same_seed(zerogpu, engine, reference_clip):
    request = SynthesisRequest("One phrase.", voice=Voice(clip=reference_clip), seed=11)
    assert zerogpu.synthesize(request).samples.tobytes() == engine.synthesize(request).samples.tobytes()


def test_every_model_call_happens_inside_the_gpu_function_sized_from_the_text(noted, gpu, reference_clip):
    noted.synthesizer.cache.clear()  # so that the clip's conditionals are made again
    gpu.durations.clear()
    request = SynthesisRequest("A phrase in a cloned voice.", voice=Voice(clip=reference_clip), seed=3)
    noted.synthesize(request)
    assert {name for name, _ in noted.calls} == set(MODEL_CALLS)
    assert all(inside for _, inside in noted.calls)
    assert gpu.durations == [gpu_seconds(request)]
    assert gpu_seconds(request) < gpu_seconds(SynthesisRequest("word " * 200)) <= MAX_GPU_SECONDS


def test_leaving_the_stream_early_stops_the_gpu_call(zerogpu):
    job = zerogpu.submit(SynthesisRequest("First.\n\nSecond.\n\nThird.", seed=1, separate_phrases=True))
    cancelled = zerogpu.cancelled_jobs
    chunks = iter(job)
    assert next(chunks).index == 0
    chunks.close()
    assert job.cancelled and zerogpu.cancelled_jobs == cancelled + 1
    assert zerogpu.status()["running"] == 0
