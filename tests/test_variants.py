"""The multilingual and Turbo models load from their own file layouts and speak through the engine, as upstream's
own `generate` makes them speak. Their random checkpoints are built from chatterbox's own classes; the multilingual
T3 has 14 layers because upstream's alignment analyzer watches attention heads in layers 9, 12 and 13."""

import numpy as np
import pytest
import torch

from engine import Engine, EngineConfig, InvalidAudio, SynthesisRequest, Voice, audio
from engine.models import SPEECH_VOCAB, multilingual_tokenizer
from tools import random_checkpoint
from tools.random_checkpoint import synthetic_voice

SEED = 77
TOKEN_LIMIT = 12
FADE = 240  # the engine fades 10 ms at each end of a chunk


def variant_engine(tmp_path_factory, model: str, checkpoint) -> Engine:
    return Engine(EngineConfig(device="cpu", checkpoint_dir=checkpoint, model=model, precision="exact",
                               data_dir=tmp_path_factory.mktemp(model)))


@pytest.fixture(scope="module")
def turbo(tmp_path_factory):
    checkpoint = random_checkpoint.cached("tiny-turbo-2layer", variant="chatterbox-turbo", t3_layers=2,
                                          voice_seconds=6.0)
    engine = variant_engine(tmp_path_factory, "chatterbox-turbo", checkpoint)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def multilingual_checkpoint():
    return random_checkpoint.cached("tiny-mtl-14layer", variant="chatterbox-multilingual", t3_layers=14)


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory, multilingual_checkpoint):
    engine = variant_engine(tmp_path_factory, "chatterbox-multilingual", multilingual_checkpoint)
    yield engine
    engine.close()


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


def test_turbo_audio_equals_upstream_generate(turbo, monkeypatch):
    text = "Hello there, how are you today?"
    clip = turbo.synthesize(SynthesisRequest(text, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT))
    upstream = turbo.synthesizer.model.upstream
    recorded = capped(upstream.t3, "inference_turbo", "max_gen_len", TOKEN_LIMIT - 1, monkeypatch)
    torch.manual_seed(SEED)
    expected = upstream.generate(text).squeeze(0).numpy()
    assert recorded[0].numel() == TOKEN_LIMIT
    assert len(clip.samples) == len(expected)
    assert np.array_equal(clip.samples[FADE:-FADE], expected[FADE:-FADE])


def test_turbo_clones_a_clip_of_five_seconds_or_more_and_refuses_a_shorter_one(turbo):
    long_enough = Voice(clip=audio.encode(synthetic_voice(6.0, seed=5), 24000, "wav"))
    assert turbo.synthesize(SynthesisRequest("Cloned.", voice=long_enough, max_tokens_per_chunk=5)).duration > 0
    too_short = Voice(clip=audio.encode(synthetic_voice(4.0, seed=5), 24000, "wav"))
    with pytest.raises(InvalidAudio, match="at least 5 s"):
        turbo.synthesize(SynthesisRequest("Cloned.", voice=too_short, max_tokens_per_chunk=5))


class StopAfterT3(Exception):
    """Raised by the S3Gen test double: upstream's multilingual `generate` passes control tokens that random weights
    sample on to S3Gen, which cannot embed them, so the comparison stops at the speech tokens."""


def test_multilingual_speech_tokens_equal_upstream_generate(multilingual, monkeypatch):
    text = "Ça a été très bien, merci."
    request = SynthesisRequest(text, seed=SEED, language="fr", max_tokens_per_chunk=TOKEN_LIMIT)
    upstream = multilingual.synthesizer.model_for(None).upstream
    recorded = capped(upstream.t3, "inference", "max_new_tokens", TOKEN_LIMIT, monkeypatch)
    assert multilingual.synthesize(request).duration > 0

    def s3gen_double(*args, **kwargs):
        raise StopAfterT3

    monkeypatch.setattr(upstream.s3gen, "inference", s3gen_double)
    torch.manual_seed(SEED)
    with pytest.raises(StopAfterT3):
        upstream.generate(text, language_id="fr")
    ours, theirs = recorded
    assert ours.shape[-1] == TOKEN_LIMIT
    assert torch.equal(ours, theirs)


def test_multilingual_clones_a_reference_clip_in_another_language(multilingual, reference_clip):
    request = SynthesisRequest("Guten Tag.", voice=Voice(clip=reference_clip), language="de", max_tokens_per_chunk=5)
    assert multilingual.synthesize(request).duration > 0


@pytest.mark.parametrize("variant, parameter, default, chosen", [("turbo", "top_p", 0.95, 0.5),
                                                                 ("multilingual", "repetition_penalty", 2.0, 1.5)])
def test_each_variant_samples_with_upstreams_defaults_unless_told_otherwise(variant, parameter, default, chosen,
                                                                            request, monkeypatch):
    engine = request.getfixturevalue(variant)
    model = engine.synthesizer.model_for(None)
    original, used = model.speech_tokens, []

    def recorded(prompts, t3_cond, sampling, *args):
        used.append(getattr(sampling, parameter))
        return original(prompts, t3_cond, sampling, *args)

    monkeypatch.setattr(model, "speech_tokens", recorded)
    for explicit in ({}, {parameter: chosen}):
        engine.synthesize(SynthesisRequest("Hello.", max_tokens_per_chunk=3, **explicit))
    assert used == [default, chosen]


def test_fast_turbo_vocodes_the_chunks_after_the_first_together(tmp_path_factory, monkeypatch):
    checkpoint = random_checkpoint.cached("tiny-turbo-2layer", variant="chatterbox-turbo", t3_layers=2,
                                          voice_seconds=6.0)
    engine = Engine(EngineConfig(device="cpu", checkpoint_dir=checkpoint, model="chatterbox-turbo",
                                 data_dir=tmp_path_factory.mktemp("fast-turbo")))
    upstream = engine.synthesizer.model_for(None).upstream
    t3_calls = capped(upstream.t3, "inference_turbo", "max_gen_len", 4, monkeypatch)
    original, flow_calls = upstream.s3gen.inference, []

    def recorded(*, speech_tokens, **kwargs):
        flow_calls.append(speech_tokens.numel())
        return original(speech_tokens=speech_tokens, **kwargs)

    monkeypatch.setattr(upstream.s3gen, "inference", recorded)
    chunks = list(engine.submit(SynthesisRequest("First part.\n\nSecond part.\n\nThird part.", seed=SEED)))
    engine.close()
    assert len(chunks) == len(t3_calls) == 3 and all(chunk.duration > 0.1 for chunk in chunks)
    speech = [int((tokens < SPEECH_VOCAB).sum()) for tokens in t3_calls]  # control tokens never reach S3Gen
    silence_tail = 3  # Turbo's S3Gen call ends with three silence tokens
    assert flow_calls == [speech[0] + silence_tail, speech[1] + speech[2] + silence_tail]


def test_chinese_is_spelled_in_cangjie_from_the_checkpoints_own_table(multilingual_checkpoint):
    converter = multilingual_tokenizer(multilingual_checkpoint).cangjie_converter
    spelled = converter("日月")  # the builder's table has two entries: 日 is "a", 月 is "b"
    assert "[cj_a][cj_.]" in spelled and "[cj_b][cj_.]" in spelled
