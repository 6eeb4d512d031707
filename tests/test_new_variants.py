"""Multilingual V3 and Nano, the two models of upstream's main branch after 0.1.7, as the studio carries them: in the
exact precision they speak what upstream's own 0.1.7 classes speak when set up as the main branch sets them up (V3:
the multilingual T3 without its alignment analyzer, a repetition penalty of 1.2, the last token's audio cut; Nano:
the Turbo class with a GPT-2 small backbone); in the fast precision the studio's own loop runs them; and they speak
through every front door."""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import openai
import pytest
import torch
from chatterbox.models.s3tokenizer import drop_invalid_tokens
from fastapi import FastAPI
from fastapi.testclient import TestClient

import api
from conftest import ROOT, capped, engine_on_cpu, studio_env, upstream_turbo_audio
from engine import MODELS, PARAMETER_RANGES, SynthesisRequest, audio
from engine.decoding.acceleration import plan, shortened_reference
from engine.decoding.loop import Sampling, SpeechPrompt, SpeechTokenLoop
from engine.models import SAMPLES_PER_TOKEN, SPEECH_VOCAB, VARIANTS, accelerated, turbo_t3_config
from engine.models.upstream import derived_backbone
from engine.models.weights import read_state
import settings
from settings import Settings
from ui import handlers

SEED = 31
TOKEN_LIMIT = 12
FADE = 240  # the engine fades 10 ms at each end of a chunk
ENGLISH = "Hello there, how are you today?"
FRENCH = "Ça a été très bien, merci."


@pytest.fixture(scope="module")
def exact_nano(nano_checkpoint, tmp_path_factory):
    yield from engine_on_cpu(tmp_path_factory, nano_checkpoint, model="chatterbox-nano", precision="exact")


@pytest.fixture(scope="module")
def exact_v3(v3_checkpoint, tmp_path_factory):
    yield from engine_on_cpu(tmp_path_factory, v3_checkpoint, model="chatterbox-multilingual-v3", precision="exact")


@pytest.fixture(scope="module")
def fast_nano(nano_checkpoint, tmp_path_factory):
    yield from engine_on_cpu(tmp_path_factory, nano_checkpoint, model="chatterbox-nano", max_chunk_tokens=8)


@pytest.fixture(scope="module")
def fast_v3(v3_checkpoint, tmp_path_factory):
    yield from engine_on_cpu(tmp_path_factory, v3_checkpoint, model="chatterbox-multilingual-v3", max_chunk_tokens=8)


def test_the_table_holds_both_beside_v2_which_stays_the_default_multilingual_model():
    v2, v3, turbo, nano = (VARIANTS[name] for name in ("chatterbox-multilingual", "chatterbox-multilingual-v3",
                                                       "chatterbox-turbo", "chatterbox-nano"))
    assert {"chatterbox-multilingual-v3", "chatterbox-nano"} <= set(MODELS)
    assert (v2.t3_file, v2.watches_alignment, dict(v2.defaults)) == ("t3_mtl23ls_v2.safetensors", True,
                                                                    {"repetition_penalty": 2.0})
    assert (v3.t3_file, v3.watches_alignment, dict(v3.defaults)) == ("t3_mtl23ls_v3.safetensors", False,
                                                                    {"repetition_penalty": 1.2})
    assert set(v3.files) - {v3.t3_file} == set(v2.files) - {v2.t3_file} and v3.repo_id == v2.repo_id
    assert (nano.repo_id, nano.voice_encoder_file, nano.t3_file, nano.s3gen_file) == (
        "ResembleAI/chatterbox-nano", "ve.safetensors", "t3_nano_v1.safetensors", "s3gen_meanflow.safetensors")
    assert (nano.architecture, nano.ignores, nano.defaults) == (turbo.architecture, turbo.ignores, turbo.defaults)
    assert v3.trims_last_token and not v2.trims_last_token and not nano.trims_last_token


def test_nanos_backbone_is_upstream_mains_gpt2_small(exact_nano):
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    with exact_nano.using_model() as model:  # loading registers GPT2_small
        backbone = model.upstream.t3.tfmr
        assert (len(backbone.h), backbone.config.n_embd, backbone.config.n_head) == (2, 768, 12)
    small, medium = LLAMA_CONFIGS["GPT2_small"], LLAMA_CONFIGS["GPT2_medium"]
    sizes = {"n_layer": 12, "n_embd": 768, "hidden_size": 768, "n_head": 12}
    assert {key: small[key] for key in sizes} == sizes
    assert (small["n_positions"], small["n_ctx"], small["vocab_size"]) == (8196, 8196, 50276)
    assert {k: v for k, v in small.items() if k not in sizes} == {k: v for k, v in medium.items() if k not in sizes}


def reference_nano(model, checkpoint):
    """Upstream 0.1.7's Turbo class as the main branch builds Nano: a GPT-2 small T3 (two layers here) loaded
    strictly from t3_nano_v1.safetensors, with this checkpoint's other parts."""
    from chatterbox.models.t3 import T3
    from chatterbox.tts_turbo import ChatterboxTurboTTS

    t3 = T3(turbo_t3_config(derived_backbone("GPT2_small", n_layer=2)))
    t3.load_state_dict(read_state(checkpoint / "t3_nano_v1.safetensors"))
    del t3.tfmr.wte
    parts = model.upstream
    return ChatterboxTurboTTS(t3.eval(), parts.s3gen, parts.ve, parts.tokenizer, "cpu", conds=parts.conds)


def reference_v3(model, checkpoint, monkeypatch):
    """Upstream 0.1.7's multilingual class as the main branch builds V3: its T3 (two layers here) loaded strictly
    from t3_mtl23ls_v3.safetensors, and no alignment analyzer (0.1.7 builds one for every multilingual config)."""
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.mtl_tts import ChatterboxMultilingualTTS

    monkeypatch.setattr(T3Config, "is_multilingual", False)
    hp = T3Config.multilingual()
    hp.llama_config_name = derived_backbone("Llama_520M", num_hidden_layers=2, intermediate_size=1024)
    t3 = T3(hp)
    t3.load_state_dict(read_state(checkpoint / "t3_mtl23ls_v3.safetensors"))
    parts = model.upstream
    return ChatterboxMultilingualTTS(t3.eval(), parts.s3gen, parts.ve, parts.tokenizer, "cpu", conds=parts.conds)


def test_exact_nano_speaks_the_audio_upstreams_turbo_class_speaks_with_gpt2_small(exact_nano, nano_checkpoint,
                                                                                   monkeypatch):
    clip = exact_nano.synthesize(SynthesisRequest(ENGLISH, seed=SEED, max_tokens_per_chunk=TOKEN_LIMIT))
    with exact_nano.using_model() as model:
        expected = upstream_turbo_audio(reference_nano(model, nano_checkpoint), ENGLISH, SEED, TOKEN_LIMIT, monkeypatch)
    assert len(clip.samples) == len(expected)
    assert np.array_equal(clip.samples[FADE:-FADE], expected[FADE:-FADE])


def test_exact_v3_samples_upstreams_tokens_and_cuts_the_last_tokens_audio_as_main_does(exact_v3, v3_checkpoint,
                                                                                         monkeypatch):
    """Main's `generate` cuts the waveform to all but its last token's 960 samples before the watermark. Random
    weights sample control tokens, which main passes on to S3Gen (it cannot embed them) and the studio drops; the
    reference drops them too."""
    with exact_v3.using_model() as model:
        ours = capped(model.upstream.t3, "inference", "max_new_tokens", TOKEN_LIMIT, monkeypatch)
    clip = exact_v3.synthesize(SynthesisRequest(FRENCH, seed=SEED, language="fr", max_tokens_per_chunk=TOKEN_LIMIT))
    with exact_v3.using_model() as model:
        upstream = reference_v3(model, v3_checkpoint, monkeypatch)
        theirs = capped(upstream.t3, "inference", "max_new_tokens", TOKEN_LIMIT, monkeypatch)
        vocode = upstream.s3gen.inference

        def cut_as_main(*, speech_tokens, **kwargs):
            speech = speech_tokens[speech_tokens < SPEECH_VOCAB]
            wav, sources = vocode(speech_tokens=speech, **kwargs)
            return wav[..., : max(1, speech.numel() - 1) * SAMPLES_PER_TOKEN], sources

        monkeypatch.setattr(upstream.s3gen, "inference", cut_as_main)
        torch.manual_seed(SEED)
        expected = upstream.generate(FRENCH, language_id="fr", repetition_penalty=1.2).squeeze(0).numpy()
        assert model.upstream.t3.tfmr.config._attn_implementation == "sdpa"  # an analyzer would have made it eager
    assert ours[0].shape[-1] == TOKEN_LIMIT and torch.equal(ours[0], theirs[0])
    speech = drop_invalid_tokens(ours[0][0])
    assert len(clip.samples) == len(expected) == max(1, int((speech < SPEECH_VOCAB).sum()) - 1) * SAMPLES_PER_TOKEN
    assert np.array_equal(clip.samples[FADE:-FADE], expected[FADE:-FADE])


def test_exact_v3_speaks_a_text_too_short_for_v2s_analyzer(exact_v3):
    assert exact_v3.synthesize(SynthesisRequest("A", language="fr", seed=SEED, max_tokens_per_chunk=3)).duration > 0


@pytest.mark.parametrize("which", ["exact_nano", "exact_v3"])
def test_studio_loop_samples_what_upstream_samples_for_each_chunk_of_a_batch(which, request, nano_checkpoint,
                                                                            v3_checkpoint, monkeypatch):
    """In float64, where rounding cannot tip a draw, each chunk decoded in a batch samples what upstream's own T3
    call samples for it alone (Nano's `inference_turbo`; V3's `inference` with no analyzer and its defaults)."""
    nano = which == "exact_nano"
    with request.getfixturevalue(which).using_model() as model:
        upstream = reference_nano(model, nano_checkpoint) if nano else reference_v3(model, v3_checkpoint, monkeypatch)
        t3 = copy.deepcopy(upstream.t3).double()
        cond = copy.copy(model.t3_conditioning(model.builtin_conditionals, 0.5)).to(dtype=torch.float64)
        texts, language = ([ENGLISH, "Short one.", "A third line."], None) if nano else (
            [FRENCH, "Oui.", "Bonjour à tous."], "fr")
        prompts = [SpeechPrompt(model.text_tokens(text, language), limit, SEED + i, cond)
                   for i, (text, limit) in enumerate(zip(texts, (TOKEN_LIMIT, 6, TOKEN_LIMIT)))]
        sampling = Sampling(0.8, 0.95, 0.0, 1.2, 0.0) if nano else Sampling(0.8, 1.0, 0.05, 1.2, 0.5)
        with torch.inference_mode():
            together = SpeechTokenLoop(t3)(prompts, sampling)
            for prompt, tokens in zip(prompts, together):
                torch.manual_seed(prompt.seed)
                if nano:
                    theirs = t3.inference_turbo(t3_cond=cond, text_tokens=prompt.text_tokens, temperature=0.8,
                                                top_p=0.95, repetition_penalty=1.2,
                                                max_gen_len=prompt.max_new_tokens - 1)
                else:
                    theirs = t3.inference(t3_cond=cond, text_tokens=torch.cat([prompt.text_tokens] * 2),
                                          cfg_weight=0.5, max_new_tokens=prompt.max_new_tokens, temperature=0.8,
                                          top_p=1.0, min_p=0.05, repetition_penalty=1.2)
                assert tokens.shape == (1, prompt.max_new_tokens)
                assert torch.equal(tokens, theirs)


@pytest.mark.parametrize("which, fused_gelu, language", [("fast_nano", True, None), ("fast_v3", False, "fr")])
def test_fast_engine_runs_int8_t3_batched_chunks_and_a_remembered_prefix(which, fused_gelu, language, request,
                                                                        monkeypatch):
    engine = request.getfixturevalue(which)
    batches, penalties = [], []
    with engine.using_model() as model:
        loop, sampled = model.token_loop, model.speech_tokens
        assert not loop.watches_alignment
        assert model.acceleration == accelerated(model.spec, plan("fast", "cpu"))
        assert model.acceleration.fused_gelu == fused_gelu
        quantized = [m for m in model.upstream.t3.tfmr.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
        assert bool(quantized) == model.acceleration.int8_t3

        def recorded(prompts, sampling):
            batches.append(len(prompts))
            penalties.append(sampling.repetition_penalty)
            return sampled(prompts, sampling)

        def heard(*, ref_dict, **kwargs):
            prompts_heard.append(ref_dict["prompt_token"].size(1))
            return vocoded(ref_dict=ref_dict, **kwargs)

        prompts_heard, vocoded = [], model.upstream.s3gen.inference
        monkeypatch.setattr(model, "speech_tokens", recorded)
        monkeypatch.setattr(model.upstream.s3gen, "inference", heard)
    request_ = SynthesisRequest("First part.\n\nSecond part.\n\nThird part.", language=language, seed=SEED)
    first = list(engine.submit(request_))
    again = engine.synthesize(request_)
    assert len(first) == 3 and all(chunk.duration > 0 for chunk in first)
    assert batches == [1, 2, 1, 2] and set(penalties) == {1.2}  # upstream's default for both (V2's is 2.0)
    assert len(loop._prefixes) == 1  # the voice's conditioning ran through T3 once, then was remembered
    assert max(prompts_heard) <= 100  # S3Gen's flow hears the first 4 s of the voice (25 tokens a second)
    assert np.array_equal(again.samples, np.concatenate([chunk.samples for chunk in first]))


def test_the_fast_precision_gives_s3gens_flow_the_first_seconds_of_the_reference_prompt():
    reference = {"prompt_token": torch.arange(250)[None], "prompt_token_len": torch.tensor([250]),
                 "prompt_feat": torch.randn(1, 500, 80), "prompt_feat_len": None, "embedding": torch.ones(1, 192)}
    short = shortened_reference(reference, 4.0)
    assert torch.equal(short["prompt_token"], reference["prompt_token"][:, :100])
    assert int(short["prompt_token_len"]) == 100
    assert torch.equal(short["prompt_feat"], reference["prompt_feat"][:, :200])
    assert short["embedding"] is reference["embedding"] and short["prompt_feat_len"] is None
    assert shortened_reference(reference, None) is reference and shortened_reference(reference, 10.0) is reference
    assert (plan("fast", "cpu").reference_seconds, plan("exact", "cpu").reference_seconds) == (4.0, None)
    assert plan("fast", "cpu", reference_seconds=10.0).reference_seconds == 10.0


@pytest.mark.parametrize("given", ["0.5", "11", "four"])
def test_the_reference_seconds_flag_takes_one_to_ten_seconds(given):
    assert settings.reference_seconds("2.5") == 2.5
    with pytest.raises(argparse.ArgumentTypeError, match="from 1 to 10"):
        settings.reference_seconds(given)


@pytest.mark.parametrize("which, language", [("fast_nano", None), ("fast_v3", "fr")])
def test_the_api_speaks_and_lists_them(which, language, request):
    engine = request.getfixturevalue(which)
    http = TestClient(FastAPI(**api.app_kwargs(engine, Settings())))
    client = openai.OpenAI(base_url="http://testserver/v1", api_key="none", http_client=http, max_retries=0)
    name = engine.config.model
    spoken = client.audio.speech.create(model=name, voice="alloy", input="Hello.", response_format="wav",
                                        extra_body={"language": language, "seed": SEED})
    assert audio.decode(spoken.content).size > 0
    assert name in [m.id for m in client.models.list().data]
    assert {"id": name} in http.get("/v1/audio/models").json()["models"]
    assert http.get("/health").json()["model"] == name


@pytest.mark.parametrize("which, language", [("fast_nano", ""), ("fast_v3", "fr")])
def test_the_desk_speaks_them(which, language, request):
    engine = request.getfixturevalue(which)
    desk = handlers.Handlers(engine, Settings())
    defaults = [PARAMETER_RANGES[p][2] for p in handlers.PARAMS]
    steps = [step for step in desk.generate("Hello.", None, "", "wav", *defaults, SEED, language,
                                            engine.config.model, False, [], None) if step != handlers.STILL_WORKING]
    player, downloads, note, takes, _ = steps[-1]
    assert "Seed used: **31**" in note and audio.decode(Path(downloads[0]).read_bytes()).size > 0


@pytest.mark.parametrize("model, checkpoint, language", [("chatterbox-nano", "nano_checkpoint", []),
                                                         ("chatterbox-multilingual-v3", "v3_checkpoint",
                                                          ["--language", "fr"])])
def test_the_cli_speaks_them(model, checkpoint, language, request, tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "app.py"), "synth", "Hello.", "--model", model,
                          "--checkpoint-dir", str(request.getfixturevalue(checkpoint)), "-o", "out.wav",
                          "--seed", str(SEED), "--max-chunk-tokens", "8", *language],
                         cwd=tmp_path, env=studio_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert audio.decode((tmp_path / "out.wav").read_bytes()).size > 0
