"""The multilingual and Turbo models load from their own file layouts and speak through the engine, as upstream's
own `generate` makes them speak. Their random checkpoints are built from chatterbox's own classes; the multilingual
T3 has 14 layers because upstream's alignment analyzer watches attention heads in layers 9, 12 and 13."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import capped, engine_on_cpu, upstream_turbo_audio
from engine import InvalidAudio, InvalidRequest, SynthesisRequest, Voice, audio
from engine.decoding.acceleration import Acceleration, apply as apply_acceleration, fuse_gpt2_gelu, plan, replace_gpt2_projections
from engine.decoding.loop import Sampling, SpeechPrompt, SpeechTokenLoop
from engine.models import SPEECH_VOCAB, VARIANTS, accelerated, multilingual_tokenizer
from tools import random_checkpoint
from tools.random_checkpoint import synthetic_voice

SEED = 77
TOKEN_LIMIT = 12
FADE = 240  # the engine fades 10 ms at each end of a chunk


@pytest.fixture(scope="module")
def multilingual_checkpoint():
    return random_checkpoint.cached("tiny-mtl-14layer", variant="chatterbox-multilingual", t3_layers=14)


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory, multilingual_checkpoint):
    yield from engine_on_cpu(tmp_path_factory, multilingual_checkpoint, model="chatterbox-multilingual",
                             precision="exact")


def test_turbo_audio_equals_upstream_generate(turbo, monkeypatch):
    text = "Hello there, how are you today?"
    with turbo.using_model() as model:
        assert model.text_tokens(text, None).numel() > 10
    clip = turbo.synthesize(SynthesisRequest(text, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT))
    with turbo.using_model() as model:
        expected = upstream_turbo_audio(model.upstream, text, SEED, TOKEN_LIMIT, monkeypatch)
    assert len(clip.samples) == len(expected)
    assert np.array_equal(clip.samples[FADE:-FADE], expected[FADE:-FADE])


def test_turbo_clones_a_clip_of_five_seconds_or_more_and_refuses_a_shorter_one(turbo):
    long_enough = Voice(clip=audio.encode(synthetic_voice(6.0, seed=5), 24000, "wav"))
    cloned = turbo.synthesize(SynthesisRequest("Cloned.", voice=long_enough, seed=11, max_tokens_per_chunk=5))
    assert cloned.duration > 0
    too_short = Voice(clip=audio.encode(synthetic_voice(4.0, seed=5), 24000, "wav"))
    with pytest.raises(InvalidAudio, match="at least 5 s"):
        turbo.synthesize(SynthesisRequest("Cloned.", voice=too_short, max_tokens_per_chunk=5))


class StopAfterT3(Exception):
    """Raised by the S3Gen test double: upstream's multilingual `generate` passes control tokens that random weights
    sample on to S3Gen, which cannot embed them, so the comparison stops at the speech tokens."""


def test_multilingual_speech_tokens_equal_upstream_generate(multilingual, monkeypatch):
    text = "Ça a été très bien, merci."
    request = SynthesisRequest(text, seed=SEED, language="fr", max_tokens_per_chunk=TOKEN_LIMIT)
    with multilingual.using_model() as model:
        upstream = model.upstream
        recorded = capped(upstream.t3, "inference", "max_new_tokens", TOKEN_LIMIT, monkeypatch)
    assert multilingual.synthesize(request).duration > 0

    def s3gen_double(*args, **kwargs):
        raise StopAfterT3

    with multilingual.using_model():
        monkeypatch.setattr(upstream.s3gen, "inference", s3gen_double)
        torch.manual_seed(SEED)
        with pytest.raises(StopAfterT3):
            upstream.generate(text, language_id="fr")
    ours, theirs = recorded
    assert ours.shape[-1] == TOKEN_LIMIT
    assert torch.equal(ours, theirs)


def test_multilingual_clones_a_reference_clip_in_another_language(multilingual, reference_clip):
    request = SynthesisRequest("Guten Tag.", voice=Voice(clip=reference_clip), language="de", seed=12,
                               max_tokens_per_chunk=5)
    assert multilingual.synthesize(request).duration > 0


@pytest.mark.parametrize("variant, parameter, default, chosen", [("turbo", "top_p", 0.95, 0.5),
                                                                 ("multilingual", "repetition_penalty", 2.0, 1.5)])
def test_each_variant_samples_with_upstreams_defaults_unless_told_otherwise(variant, parameter, default, chosen,
                                                                            request, monkeypatch):
    engine = request.getfixturevalue(variant)
    used = []

    def recorded(prompts, sampling, *args):
        used.append(getattr(sampling, parameter))
        return original(prompts, sampling, *args)

    with engine.using_model() as model:
        original = model.speech_tokens
        monkeypatch.setattr(model, "speech_tokens", recorded)
    for explicit in ({}, {parameter: chosen}):
        engine.synthesize(SynthesisRequest("Hello.", seed=13, max_tokens_per_chunk=3, **explicit))
    assert used == [default, chosen]


@pytest.fixture(scope="module")
def fast_turbo(turbo_checkpoint, tmp_path_factory):
    yield from engine_on_cpu(tmp_path_factory, turbo_checkpoint, model="chatterbox-turbo")


def test_fast_turbo_samples_chunks_together_and_vocodes_those_after_the_first_together(fast_turbo, monkeypatch):
    batches, flow_calls = [], []

    def recorded_loop(prompts, *args, **kwargs):
        batches.append(original_loop(prompts, *args, **kwargs))
        return batches[-1]

    def recorded_flow(*, speech_tokens, **kwargs):
        flow_calls.append(speech_tokens.numel())
        return original_flow(speech_tokens=speech_tokens, **kwargs)

    with fast_turbo.using_model() as model:
        upstream, original_loop = model.upstream, model.token_loop.__call__
        original_flow = upstream.s3gen.inference
        monkeypatch.setattr(model, "token_loop", recorded_loop)
        monkeypatch.setattr(upstream.s3gen, "inference", recorded_flow)
    request = SynthesisRequest("First part.\n\nSecond part.\n\nThird part.", seed=SEED, max_tokens_per_chunk=4)
    chunks = list(fast_turbo.submit(request))
    assert len(chunks) == 3 and all(chunk.duration > 0.1 for chunk in chunks)
    assert [len(batch) for batch in batches] == [1, 2]
    speech = [int((tokens < SPEECH_VOCAB).sum()) for batch in batches for tokens in batch]  # control tokens dropped
    silence_tail = 3  # Turbo's S3Gen call ends with three silence tokens
    assert flow_calls == [speech[0] + silence_tail, speech[1] + speech[2] + silence_tail]


def test_fast_turbo_fuses_gpt2s_gelu_and_on_this_cpu_quantizes_its_projections(fast_turbo):
    with fast_turbo.using_model() as model:
        backbone = model.upstream.t3.tfmr
        quantized = [m for m in backbone.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
        # c_attn, c_proj, c_fc, c_proj
        assert len(quantized) == (4 * len(backbone.h) if model.acceleration.int8_t3 else 0)
        assert [type(block.mlp.act) for block in backbone.h] == [torch.nn.GELU] * len(backbone.h)


@pytest.mark.parametrize("variant, fused_gelu", [("chatterbox", False), ("chatterbox-turbo", True),
                                                ("chatterbox-multilingual", False)])
def test_the_fast_precision_gives_each_model_what_fits_its_t3(variant, fused_gelu):
    acceleration = accelerated(VARIANTS[variant], plan("fast", "cpu"))
    assert (acceleration.token_loop, acceleration.fused_gelu) == (True, fused_gelu)
    assert "own token loop" in acceleration.describe()


def test_gpt2s_projections_and_gelu_become_the_linear_layers_and_fused_gelu_they_are(turbo):
    with turbo.using_model() as model:
        backbone = copy.deepcopy(model.upstream.t3.tfmr)
    embeds = torch.randn(1, 9, backbone.config.hidden_size, generator=torch.Generator().manual_seed(SEED))
    with torch.inference_mode():
        before = backbone(inputs_embeds=embeds).last_hidden_state
        replace_gpt2_projections(backbone)
        fuse_gpt2_gelu(backbone)
        after = backbone(inputs_embeds=embeds).last_hidden_state
    assert not any(type(m).__name__ in ("Conv1D", "NewGELUActivation") for m in backbone.modules())
    assert torch.allclose(before, after, rtol=0, atol=1e-4)


@pytest.mark.parametrize("sampling", [Sampling(0.8, 0.95, 0.05, 1.2, 0.0), Sampling(1.3, 1.0, 0.0, 2.0, 0.0)])
def test_turbo_in_the_studios_token_loop_samples_the_tokens_upstream_samples(turbo, sampling):
    with turbo.using_model() as model:
        text = model.text_tokens("Hello there, how are you today?", None)
        cond = model.t3_conditioning(model.builtin_conditionals, 0.5)
        with torch.inference_mode():
            torch.manual_seed(SEED)
            theirs = model.upstream.t3.inference_turbo(
                t3_cond=cond, text_tokens=text, temperature=sampling.temperature, top_p=sampling.top_p,
                repetition_penalty=sampling.repetition_penalty, max_gen_len=TOKEN_LIMIT - 1)
            (ours,) = SpeechTokenLoop(model.upstream.t3)([SpeechPrompt(text, TOKEN_LIMIT, SEED, cond)], sampling)
        assert ours.shape == (1, TOKEN_LIMIT)
        assert torch.equal(ours, theirs)


def test_chinese_is_spelled_in_cangjie_from_the_checkpoints_own_table(multilingual_checkpoint):
    converter = multilingual_tokenizer(multilingual_checkpoint).cangjie_converter
    spelled = converter("日月")  # the builder's table has two entries: 日 is "a", 月 is "b"
    assert "[cj_a][cj_.]" in spelled and "[cj_b][cj_.]" in spelled


class SteeredHead(torch.nn.Module):
    """A test double for T3's speech head: the real head, with one token made near certain in every row at the
    steps `steered` names (counted by backbone call from 0, the prompt's)."""

    def __init__(self, head: torch.nn.Module, steered: dict[int, int]):
        super().__init__()
        self.head, self.steered, self.calls = head, steered, 0
        self.weight = head.weight  # upstream's T3 reads its device from here

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden)
        last = logits if logits.dim() == 2 else logits[:, -1]  # the studio's loop asks for the last position only
        if self.calls in self.steered:
            last[:, self.steered[self.calls]] = 1e4
        self.calls += 1
        return logits


def test_multilingual_chunks_decoded_together_sample_what_upstream_samples_for_each(multilingual):
    """In float64, where rounding cannot tip a draw, each chunk of a batch samples what upstream's `T3.inference`
    samples for it alone, alignment checks included: the stop token offered at step 2, before the text is spoken,
    is kept away; a token offered at steps 14 and 15 is taken twice, and the repetition forces the stop at step 16.
    A text of five tokens or fewer is not watched for an early stop (upstream's analyzer fails on one)."""
    with multilingual.using_model() as model:
        t3 = copy.deepcopy(model.upstream.t3).double()
        stop, repeated = t3.hp.stop_speech_token, 1234
        steering = {2: stop, 14: repeated, 15: repeated}
        cond = copy.copy(model.t3_conditioning(model.builtin_conditionals, 0.5)).to(dtype=torch.float64)
        sampling = Sampling(0.8, 1.0, 0.05, 2.0, 0.5)
        texts = ["Ça a été très bien, merci.", "Guten Tag, wie geht es dir heute?", "Oui", "A"]
        prompts = [SpeechPrompt(model.text_tokens(text, "fr"), limit, SEED + i, cond)
                   for i, (text, limit) in enumerate(zip(texts, (30, 30, 10, 30)))]
        assert prompts[-1].text_tokens.numel() == 5
        head = t3.speech_head
        with torch.inference_mode():
            together = SpeechTokenLoop(t3, SteeredHead(head, steering), watches_alignment=True)(prompts, sampling)
            assert [tokens.shape[1] for tokens in together] == [17, 17, 10, 3]
            assert together[-1][0, -1] == stop
            for prompt, tokens in zip(prompts[:-1], together):
                assert stop not in tokens[0, :-1] and tokens[0, 14:16].tolist() in ([repeated] * 2, [])
                assert tokens[0, -1] == stop or prompt.max_new_tokens == 10
                t3.speech_head = SteeredHead(head, steering)
                torch.manual_seed(prompt.seed)
                theirs = t3.inference(t3_cond=cond, text_tokens=torch.cat([prompt.text_tokens] * 2), cfg_weight=0.5,
                                      max_new_tokens=prompt.max_new_tokens, temperature=0.8, top_p=1.0, min_p=0.05,
                                      repetition_penalty=2.0)
                assert torch.equal(tokens, theirs)


@pytest.fixture(scope="module")
def fast_multilingual(tmp_path_factory, multilingual_checkpoint):
    yield from engine_on_cpu(tmp_path_factory, multilingual_checkpoint, model="chatterbox-multilingual")


def test_fast_multilingual_samples_chunks_together_in_the_studios_loop(fast_multilingual, monkeypatch):
    batches = []

    def recorded_loop(prompts, *args, **kwargs):
        batches.append(len(prompts))
        return original_loop(prompts, *args, **kwargs)

    with fast_multilingual.using_model() as model:
        original_loop = model.token_loop.__call__
        monkeypatch.setattr(model, "token_loop", recorded_loop)
    request = SynthesisRequest("Premier.\n\nDeuxième partie.\n\nTroisième.", language="fr", seed=SEED,
                               max_tokens_per_chunk=6)
    chunks = list(fast_multilingual.submit(request))
    assert len(chunks) == 3 and all(chunk.duration > 0.1 for chunk in chunks)
    assert batches == [1, 2]
    assert np.array_equal(fast_multilingual.synthesize(request).samples, np.concatenate([c.samples for c in chunks]))
    with fast_multilingual.using_model() as model:
        assert model.upstream.t3.tfmr.config._attn_implementation == "sdpa"  # as loaded: the loop only borrows it


def test_a_text_too_short_for_upstreams_multilingual_checks_is_refused_in_exact_and_spoken_in_fast(
        multilingual, fast_multilingual):
    request = SynthesisRequest("A", language="fr", seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT)
    with pytest.raises(InvalidRequest, match="too short .* --precision fast"):
        multilingual.synthesize(request)
    assert fast_multilingual.synthesize(request).duration > 0


def test_upstreams_multilingual_loop_leaves_no_hooks_behind(multilingual):
    """Upstream's `T3.inference` hooks three attention layers on every call and never removes them."""
    with multilingual.using_model() as model:
        backbone = model.upstream.t3.tfmr
        before = sum(len(module._forward_hooks) for module in backbone.modules())
    for seed in (1, 2):
        multilingual.synthesize(SynthesisRequest("Bonjour à tous.", language="fr", seed=seed, max_tokens_per_chunk=5))
    with multilingual.using_model():
        assert sum(len(module._forward_hooks) for module in backbone.modules()) == before


def test_multilingual_loop_with_a_bfloat16_backbone_watches_alignment_deterministically(multilingual):
    """The fast precision's multilingual T3 on CUDA, run here on the CPU: the backbone and the alignment heads'
    queries and keys in bfloat16, the heads' weights and sampling in float32."""
    with multilingual.using_model() as model:
        upstream = SimpleNamespace(t3=copy.deepcopy(model.upstream.t3), s3gen=None)
        loop = apply_acceleration(upstream, Acceleration(token_loop=True, bf16_t3=True), watches_alignment=True)
        assert loop.watches_alignment
        cond = model.t3_conditioning(model.builtin_conditionals, 0.5)
        prompts = [SpeechPrompt(model.text_tokens(text, "fr"), TOKEN_LIMIT, SEED + i, cond)
                   for i, text in enumerate(["Ça a été très bien, merci.", "Oui"])]
        sampling = Sampling(0.8, 1.0, 0.05, 2.0, 0.5)
        with torch.inference_mode():
            first, second = (loop(prompts, sampling) for _ in range(2))
        for tokens, again in zip(first, second):
            assert 0 < tokens.shape[1] <= TOKEN_LIMIT
            assert torch.equal(tokens, again)
