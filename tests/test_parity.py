"""In the exact precision the engine's output is the model's own: same checkpoint, seed and token limit as
upstream's `generate`. The fast precision changes what it says it changes, and nothing else."""

import numpy as np
import pytest
import torch

from engine import Engine, EngineConfig, SynthesisRequest
from engine.acceleration import Bfloat16Estimator
from engine.decoding import SpeechTokenLoop
from engine.models import Sampling

TEXT = "Parity holds when the engine and upstream agree."
SEED = 1234
TOKEN_LIMIT = 24
FADE = 240  # the engine fades 10 ms at each end of a chunk


@pytest.fixture(scope="module")
def exact_engine(tiny_checkpoint, tmp_path_factory):
    engine = Engine(EngineConfig(device="cpu", checkpoint_dir=tiny_checkpoint, precision="exact",
                                 data_dir=tmp_path_factory.mktemp("exact-data")))
    yield engine
    engine.close()


@pytest.fixture
def recorded_t3(exact_engine, monkeypatch):
    """Record every speech-token sequence T3 returns, with the token limit capped for both paths."""
    t3 = exact_engine.synthesizer.model_for(None).upstream.t3
    original = t3.inference
    recorded = []

    def capped(*args, max_new_tokens, **kwargs):
        tokens = original(*args, max_new_tokens=min(max_new_tokens, TOKEN_LIMIT), **kwargs)
        recorded.append(tokens.clone())
        return tokens

    monkeypatch.setattr(t3, "inference", capped)
    return recorded


def test_exact_engine_tokens_and_audio_equal_upstream_generate(exact_engine, recorded_t3):
    chunks = list(exact_engine.submit(SynthesisRequest(TEXT, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT)))
    assert len(chunks) == 1

    upstream = exact_engine.synthesizer.model.upstream
    torch.manual_seed(SEED)
    upstream_wav = upstream.generate(TEXT).squeeze(0).numpy()

    engine_tokens, upstream_tokens = recorded_t3
    assert engine_tokens.shape[-1] == TOKEN_LIMIT
    assert torch.equal(engine_tokens, upstream_tokens)
    ours = chunks[0].samples
    assert len(ours) == len(upstream_wav)
    assert np.array_equal(ours[FADE:-FADE], upstream_wav[FADE:-FADE])


def test_exact_engine_leaves_the_upstream_model_as_loaded(exact_engine):
    upstream = exact_engine.synthesizer.model_for(None).upstream
    assert all(type(m) is torch.nn.Linear for m in upstream.t3.tfmr.modules() if "Linear" in type(m).__name__)
    assert not isinstance(upstream.s3gen.flow.decoder.estimator, Bfloat16Estimator)
    assert exact_engine.synthesizer.acceleration.flow_steps == 10


def test_fast_engine_quantizes_t3_and_halves_the_flow_steps(engine):
    acceleration = engine.synthesizer.acceleration
    upstream = engine.synthesizer.model_for(None).upstream
    quantized = [m for m in upstream.t3.tfmr.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantized) == (7 * len(upstream.t3.tfmr.layers) if acceleration.int8_t3 else 0)
    assert isinstance(upstream.s3gen.flow.decoder.estimator, Bfloat16Estimator) == acceleration.bf16_flow
    assert acceleration.flow_steps == 5


def test_fast_engine_is_deterministic_per_seed(engine):
    request = SynthesisRequest(TEXT, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT)
    first, second = (engine.synthesize(request).samples for _ in range(2))
    assert np.array_equal(first, second)
    assert np.abs(first).max() > 0


def upstream_and_loop_tokens(model, loop, cfg_weight: float):
    """The tokens upstream's `T3.inference` and `loop` sample for TEXT, each from the same seed."""
    text = model.text_tokens(TEXT, None)
    cond = model.t3_conditioning(model.builtin_conditionals, 0.5)
    sampling = Sampling(0.8, 1.0, 0.05, 1.2, cfg_weight, TOKEN_LIMIT)
    with torch.inference_mode():
        torch.manual_seed(SEED)
        theirs = model.upstream.t3.inference(t3_cond=cond, text_tokens=torch.cat([text, text]), cfg_weight=cfg_weight,
                                             max_new_tokens=TOKEN_LIMIT, temperature=0.8, top_p=1.0, min_p=0.05,
                                             repetition_penalty=1.2)
        torch.manual_seed(SEED)
        ours = loop(text, cond, sampling, lambda: False)
    return theirs, ours


def test_own_token_loop_in_float32_samples_the_tokens_upstream_samples(exact_engine):
    model = exact_engine.synthesizer.model_for(None)
    theirs, ours = upstream_and_loop_tokens(model, SpeechTokenLoop(model.upstream.t3), cfg_weight=0.5)
    assert ours.shape == (1, TOKEN_LIMIT)
    assert torch.equal(ours, theirs)


def test_own_token_loop_stops_at_once_when_cancelled(exact_engine):
    model = exact_engine.synthesizer.model_for(None)
    asked = []
    sampling = Sampling(0.8, 1.0, 0.05, 1.2, 0.5, TOKEN_LIMIT)
    with torch.inference_mode():
        tokens = SpeechTokenLoop(model.upstream.t3)(model.text_tokens(TEXT, None),
                                                   model.t3_conditioning(model.builtin_conditionals, 0.5),
                                                   sampling, lambda: asked.append(1) or len(asked) > 3)
    assert tokens.shape == (1, 3)


@pytest.mark.parametrize("which", ["exact_engine", "engine"])
def test_guidance_off_still_speaks(which, request):
    chosen = request.getfixturevalue(which)
    clip = chosen.synthesize(SynthesisRequest(TEXT, seed=SEED, cfg_weight=0.0, max_tokens_per_chunk=TOKEN_LIMIT))
    assert clip.duration > 0.5
