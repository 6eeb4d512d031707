"""In the exact precision the engine's output is the model's own: same checkpoint, seed and token limit as
upstream's `generate`. The fast precision changes what it says it changes, and nothing else."""

import copy
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import engine_on_cpu
from engine import SynthesisRequest
from engine.decoding.acceleration import Acceleration, Bfloat16Estimator, apply as apply_acceleration
from engine.decoding.loop import Sampling, SpeechPrompt, SpeechTokenLoop
from engine.decoding.onnx_cpu import OnnxEncoder, OnnxEstimator
from engine.models import JOINT_VOCODE_TOKENS, SAMPLES_PER_TOKEN, joint_runs
from tools.random_checkpoint import synthetic_voice

TEXT = "Parity holds when the engine and upstream agree."
SEED = 1234
TOKEN_LIMIT = 24
FADE = 240  # the engine fades 10 ms at each end of a chunk


@pytest.fixture(scope="module")
def exact_engine(tiny_checkpoint, tmp_path_factory):
    yield from engine_on_cpu(tmp_path_factory, tiny_checkpoint, precision="exact")


@pytest.fixture
def recorded_t3(exact_engine, monkeypatch):
    """Record every speech-token sequence T3 returns, with the token limit capped for both paths."""
    recorded = []

    def capped(*args, max_new_tokens, **kwargs):
        tokens = original(*args, max_new_tokens=min(max_new_tokens, TOKEN_LIMIT), **kwargs)
        recorded.append(tokens.clone())
        return tokens

    with exact_engine.using_model() as model:
        t3 = model.upstream.t3
        original = t3.inference
        monkeypatch.setattr(t3, "inference", capped)
    return recorded


def test_exact_engine_tokens_and_audio_equal_upstream_generate(exact_engine, recorded_t3):
    chunks = list(exact_engine.submit(SynthesisRequest(TEXT, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT)))
    assert len(chunks) == 1

    with exact_engine.using_model() as model:
        upstream = model.upstream
        torch.manual_seed(SEED)
        upstream_wav = upstream.generate(TEXT).squeeze(0).numpy()

    engine_tokens, upstream_tokens = recorded_t3
    assert engine_tokens.shape[-1] == TOKEN_LIMIT
    assert torch.equal(engine_tokens, upstream_tokens)
    ours = chunks[0].samples
    assert len(ours) == len(upstream_wav)
    assert np.array_equal(ours[FADE:-FADE], upstream_wav[FADE:-FADE])


def test_exact_engine_leaves_the_upstream_model_as_loaded(exact_engine):
    with exact_engine.using_model() as model:
        upstream = model.upstream
        assert all(type(m) is torch.nn.Linear for m in upstream.t3.tfmr.modules() if "Linear" in type(m).__name__)
        assert not isinstance(upstream.s3gen.flow.decoder.estimator, (Bfloat16Estimator, OnnxEstimator))
        assert not isinstance(upstream.s3gen.flow.encoder, OnnxEncoder) and "decode" not in vars(upstream.s3gen.mel2wav)
    assert exact_engine.synthesizer.acceleration.flow_steps == 10


def test_fast_engine_quantizes_t3_and_halves_the_flow_steps(engine):
    acceleration = engine.synthesizer.acceleration
    with engine.using_model() as model:
        upstream = model.upstream
        quantized = [m for m in upstream.t3.tfmr.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
        assert len(quantized) == (7 * len(upstream.t3.tfmr.layers) if acceleration.int8_t3 else 0)
        assert isinstance(upstream.s3gen.flow.decoder.estimator, Bfloat16Estimator) == acceleration.bf16_flow
        assert isinstance(upstream.s3gen.flow.decoder.estimator, OnnxEstimator) == acceleration.onnx_s3gen
    assert acceleration.flow_steps == 5


def test_fast_engine_is_deterministic_per_seed(engine):
    request = SynthesisRequest(TEXT, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT)
    first, second = (engine.synthesize(request).samples for _ in range(2))
    assert np.array_equal(first, second)
    assert np.abs(first).max() > 0


SAMPLING = Sampling(0.8, 1.0, 0.05, 1.2, 0.5)


def upstream_and_loop_tokens(model, loop, cfg_weight: float):
    """The tokens upstream's `T3.inference` and `loop` sample for TEXT, each from the same seed."""
    text = model.text_tokens(TEXT, None)
    cond = model.t3_conditioning(model.builtin_conditionals, 0.5)
    with torch.inference_mode():
        torch.manual_seed(SEED)
        theirs = model.upstream.t3.inference(t3_cond=cond, text_tokens=torch.cat([text, text]), cfg_weight=cfg_weight,
                                             max_new_tokens=TOKEN_LIMIT, temperature=0.8, top_p=1.0, min_p=0.05,
                                             repetition_penalty=1.2)
        (ours,) = loop([SpeechPrompt(text, TOKEN_LIMIT, SEED, cond)], replace(SAMPLING, cfg_weight=cfg_weight))
    return theirs, ours


def test_own_token_loop_in_float32_samples_the_tokens_upstream_samples(exact_engine):
    with exact_engine.using_model() as model:
        theirs, ours = upstream_and_loop_tokens(model, SpeechTokenLoop(model.upstream.t3), cfg_weight=0.5)
    assert ours.shape == (1, TOKEN_LIMIT)
    assert torch.equal(ours, theirs)


def test_own_token_loop_stops_a_cancelled_chunk_at_once_and_its_batch_mates_go_on(exact_engine):
    asked = []
    with exact_engine.using_model() as model:
        cond = model.t3_conditioning(model.builtin_conditionals, 0.5)
        text = model.text_tokens(TEXT, None)
        cancelled = SpeechPrompt(text, TOKEN_LIMIT, SEED, cond, lambda: asked.append(1) or len(asked) > 3)
        with torch.inference_mode():
            (alone,) = SpeechTokenLoop(model.upstream.t3)([cancelled], SAMPLING)
            asked.clear()
            stopped, going_on = SpeechTokenLoop(model.upstream.t3)(
                [cancelled, SpeechPrompt(text, TOKEN_LIMIT, SEED, cond)], SAMPLING)
    assert alone.shape == stopped.shape == (1, 3)
    assert going_on.shape == (1, TOKEN_LIMIT)


def test_own_token_loop_runs_a_voices_conditioning_once_per_exaggeration(exact_engine):
    """The conditioning every prompt starts with goes through the backbone once; the voice's next request reuses
    its keys and values and samples the same tokens. Another exaggeration is another conditioning."""
    with exact_engine.using_model() as model:
        loop = SpeechTokenLoop(model.upstream.t3)
        text = model.text_tokens(TEXT, None)

        def decode(exaggeration: float):
            first_slots = []
            hook = model.upstream.t3.tfmr.register_forward_pre_hook(
                lambda _, args, kwargs: first_slots.append(int(kwargs["cache_position"][0])), with_kwargs=True)
            try:
                with torch.inference_mode():
                    cond = model.t3_conditioning(model.builtin_conditionals, exaggeration)
                    (tokens,) = loop([SpeechPrompt(text, TOKEN_LIMIT, SEED, cond)], SAMPLING)
            finally:
                hook.remove()
            return tokens, first_slots.count(0)

        first, conditioning_runs = decode(0.5)
        again, conditioning_reruns = decode(0.5)
        _, other_runs = decode(0.9)
        assert (conditioning_runs, conditioning_reruns, other_runs) == (1, 0, 1)
        assert torch.equal(first, again)


class RecordingHead:
    """A test double for T3's speech head: the real head, recording its logits; when `stop_step` is given, the
    first chunk's logits (its first `rows`) for token number `stop_step` (counted from 0) make only the stop token
    likely."""

    def __init__(self, head, stop: int, rows: int, stop_step: int | None = None):
        self.head, self.stop, self.rows, self.stop_step, self.logits = head, stop, rows, stop_step, []

    def __call__(self, hidden):
        logits = self.head(hidden)
        if len(self.logits) == self.stop_step:
            logits[0 : self.rows, self.stop] = 1e4
        self.logits.append(logits.clone())
        return logits


@pytest.mark.parametrize("which", ["exact_engine", "turbo"])
def test_chunks_decoded_together_sample_what_each_samples_alone(which, request):
    """Padding and masks hide the chunks from each other, also chunks of other voices, whose conditioning may be
    shorter (Turbo's speech prompt is as long as the voice's clip, up to 15 s). In float64, where rounding cannot
    tip a draw, each chunk's logits and tokens are what it gets alone, also when one chunk stops early or has a
    smaller budget. The English model guides (two rows a chunk); Turbo does not."""
    with request.getfixturevalue(which).using_model() as model:
        t3 = copy.deepcopy(model.upstream.t3).double()
        rows = 1 if t3.is_gpt else 2
        builtin, other = (copy.copy(model.t3_conditioning(conds, 0.5)).to(dtype=torch.float64)
                          for conds in (model.builtin_conditionals, model.conditionals(synthetic_voice(8.0, seed=3))))
        if t3.is_gpt:
            assert other.cond_prompt_speech_tokens.size(1) != builtin.cond_prompt_speech_tokens.size(1)
        texts = ["Short one.", "A somewhat longer sentence sits in the middle of this batch.", TEXT]
        prompts = [SpeechPrompt(model.text_tokens(text, None), limit, SEED + i, cond)
                   for i, (text, limit, cond) in enumerate(zip(texts, (TOKEN_LIMIT, 12, TOKEN_LIMIT),
                                                                (builtin, other, builtin)))]

        def decode(chosen, first_stops: bool):
            head = RecordingHead(t3.speech_head, t3.hp.stop_speech_token, rows, 6 if first_stops else None)
            with torch.inference_mode():
                return SpeechTokenLoop(t3, head)(chosen, SAMPLING), head.logits

        together, batched_logits = decode(prompts, first_stops=True)
        assert [tokens.shape[1] for tokens in together] == [7, 12, TOKEN_LIMIT]
        assert together[0][0, -1] == t3.hp.stop_speech_token
        for i, prompt in enumerate(prompts):
            (alone,), logits = decode([prompt], first_stops=i == 0)
            assert torch.equal(together[i], alone)
            for step, single in enumerate(logits):
                assert torch.allclose(batched_logits[step][rows * i : rows * (i + 1)], single, rtol=0, atol=1e-9)


@pytest.mark.parametrize("which", ["exact_engine", "turbo"])
def test_bfloat16_backbone_samples_whole_chunks_deterministically(which, request):
    """The fast precision's T3 on CUDA, run here on the CPU: the backbone computes in bfloat16, sampling in float32."""
    with request.getfixturevalue(which).using_model() as model:
        upstream = SimpleNamespace(t3=copy.deepcopy(model.upstream.t3), s3gen=None)
        loop = apply_acceleration(upstream, Acceleration(token_loop=True, bf16_t3=True))
        assert {p.dtype for p in upstream.t3.tfmr.parameters()} == {torch.bfloat16}
        assert upstream.t3.speech_head.weight.dtype == torch.float32
        cond = model.t3_conditioning(model.builtin_conditionals, 0.5)
        prompts = [SpeechPrompt(model.text_tokens(text, None), TOKEN_LIMIT, SEED + i, cond)
                   for i, text in enumerate([TEXT, "Short one."])]
        with torch.inference_mode():
            first, second = (loop(prompts, SAMPLING) for _ in range(2))
        for tokens, again in zip(first, second):
            assert tokens.shape == (1, TOKEN_LIMIT)
            assert torch.equal(tokens, again)


def test_fast_engine_decodes_the_chunks_of_a_long_text_in_batches(engine, monkeypatch):
    batch_sizes = []

    def recorded(prompts, *args, **kwargs):
        batch_sizes.append(len(prompts))
        return original(prompts, *args, **kwargs)

    with engine.using_model() as model:
        original = model.token_loop.__call__
        monkeypatch.setattr(model, "token_loop", recorded)
    text = " ".join(f"This is sentence number {n} of a text long enough to need several chunks." for n in range(12))
    request = SynthesisRequest(text, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT)
    chunks = list(engine.submit(request))
    assert batch_sizes == [1] + [4] * ((len(chunks) - 1) // 4) + ([(len(chunks) - 1) % 4] if (len(chunks) - 1) % 4 else [])
    assert len(chunks) > 2 and all(chunk.duration > 0.5 for chunk in chunks)
    assert np.array_equal(engine.synthesize(request).samples, np.concatenate([c.samples for c in chunks]))


def test_fast_engine_vocodes_each_batch_as_one_sequence_cut_at_the_token_boundaries(engine, monkeypatch):
    vocoded, flow_calls = [], []

    def recorded_vocode(chunks, *args):
        pieces = original_vocode(chunks, *args)
        vocoded.append(([tokens.numel() for tokens in chunks], [len(piece) for piece in pieces]))
        return pieces

    def recorded_inference(*, speech_tokens, **kwargs):
        flow_calls.append(speech_tokens.numel())
        return original_inference(speech_tokens=speech_tokens, **kwargs)

    with engine.using_model() as model:
        original_vocode, original_inference = model.vocode, model.upstream.s3gen.inference
        monkeypatch.setattr(model, "vocode", recorded_vocode)
        monkeypatch.setattr(model.upstream.s3gen, "inference", recorded_inference)
    text = "\n\n".join(f"Paragraph {n} is a chunk of its own." for n in range(5))
    chunks = list(engine.submit(SynthesisRequest(text, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT)))
    assert len(chunks) == 5
    assert [len(counts) for counts, _ in vocoded] == [1, 4]
    assert flow_calls == [sum(counts) for counts, _ in vocoded]
    for counts, lengths in vocoded:
        assert lengths == [count * SAMPLES_PER_TOKEN for count in counts]


@pytest.mark.parametrize("counts, runs", [
    ([], []),
    ([300, 300, 300], [[0, 1, 2]]),
    ([600, 300, 200, 900], [[0, 1], [2], [3]]),
    ([1200, 10], [[0], [1]]),
])
def test_chunks_are_vocoded_together_up_to_upstreams_longest_call(counts, runs):
    assert [list(run) for run in joint_runs(counts, JOINT_VOCODE_TOKENS)] == runs


@pytest.mark.parametrize("which", ["exact_engine", "engine"])
def test_guidance_off_still_speaks(which, request):
    chosen = request.getfixturevalue(which)
    clip = chosen.synthesize(SynthesisRequest(TEXT, seed=SEED, cfg_weight=0.0, max_tokens_per_chunk=TOKEN_LIMIT))
    assert clip.duration > 0.5
