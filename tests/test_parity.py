"""The engine's output is the model's own: same checkpoint, seed and token limit as upstream's `generate`."""

import numpy as np
import pytest
import torch

from engine import SynthesisRequest

TEXT = "Parity holds when the engine and upstream agree."
SEED = 1234
TOKEN_LIMIT = 24
FADE = 240  # the engine fades 10 ms at each end of a chunk


@pytest.fixture
def recorded_t3(engine, monkeypatch):
    """Record every speech-token sequence T3 returns, with the token limit capped for both paths."""
    t3 = engine.synthesizer.model_for(None).upstream.t3
    original = t3.inference
    recorded = []

    def capped(*args, max_new_tokens, **kwargs):
        tokens = original(*args, max_new_tokens=min(max_new_tokens, TOKEN_LIMIT), **kwargs)
        recorded.append(tokens.clone())
        return tokens

    monkeypatch.setattr(t3, "inference", capped)
    return recorded


def test_engine_tokens_and_audio_equal_upstream_generate(engine, recorded_t3):
    chunks = list(engine.submit(SynthesisRequest(TEXT, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT)))
    assert len(chunks) == 1

    upstream = engine.synthesizer.model.upstream
    torch.manual_seed(SEED)
    upstream_wav = upstream.generate(TEXT).squeeze(0).numpy()

    engine_tokens, upstream_tokens = recorded_t3
    assert engine_tokens.shape[-1] == TOKEN_LIMIT
    assert torch.equal(engine_tokens, upstream_tokens)
    ours = chunks[0].samples
    assert len(ours) == len(upstream_wav)
    assert np.array_equal(ours[FADE:-FADE], upstream_wav[FADE:-FADE])
