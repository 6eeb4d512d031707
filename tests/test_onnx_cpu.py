"""On a CPU, fast precision runs S3Gen's flow encoder and estimator and its vocoder body on ONNX Runtime: the same
float32 sums as torch to about 1e-5, at any length and batch, kept on disk once exported, with torch's copy of their
weights freed; a part that cannot be exported stays in torch. The suite's own engines keep S3Gen in torch (see
conftest): each part here wraps a copy of a module of the exact Turbo engine's S3Gen (float32, meanflow), and the CLI
runs a whole synthesis with ONNX Runtime on."""

import copy
import logging

import numpy as np
import pytest
import torch

from conftest import TEST_CHUNK_TOKENS
from engine import SynthesisRequest, audio
from engine.decoding import onnx_cpu
from test_cli import synth

FRAMES = (150, 420)


@pytest.fixture(scope="module")
def s3gen(turbo):
    """The exact Turbo engine's S3Gen: all in torch, in float32."""
    with turbo.using_model() as model:
        assert not model.acceleration.onnx_s3gen and not model.acceleration.bf16_flow
        yield model.upstream.s3gen


@pytest.fixture(scope="module")
def onnx_estimator(s3gen):
    return onnx_cpu.OnnxEstimator(copy.deepcopy(s3gen.flow.decoder.estimator))


@pytest.fixture(scope="module")
def onnx_hift(s3gen):
    hift = copy.deepcopy(s3gen.mel2wav)
    onnx_cpu.vocode_with_onnx(hift)
    return hift


def estimator_inputs(frames: int, batch: int) -> dict:
    generator = torch.Generator().manual_seed(frames + batch)

    def noise(*shape):
        return torch.randn(*shape, generator=generator)

    return {"x": noise(batch, 80, frames), "mask": torch.ones(batch, 1, frames), "mu": noise(batch, 80, frames),
            "t": torch.rand(batch, generator=generator), "spks": noise(batch, 80), "cond": noise(batch, 80, frames),
            "r": torch.rand(batch, generator=generator)}


def on_meta(*modules: torch.nn.Module) -> bool:
    return all(p.is_meta for module in modules for p in module.parameters())


@pytest.mark.parametrize("frames", FRAMES)
@pytest.mark.parametrize("batch", [1, 2])
def test_the_flow_estimator_on_onnx_runtime_matches_torch_at_any_length_and_batch(s3gen, onnx_estimator, frames,
                                                                                    batch):
    inputs = estimator_inputs(frames, batch)
    with torch.inference_mode():
        expected = s3gen.flow.decoder.estimator(**inputs)
        got = onnx_estimator(**inputs)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert on_meta(onnx_estimator.inner)  # torch's copy of the weights is freed


@pytest.mark.parametrize("tokens", [40, 160])
def test_the_flow_encoder_on_onnx_runtime_matches_torch_at_any_length(s3gen, tokens):
    encoder = onnx_cpu.OnnxEncoder(copy.deepcopy(s3gen.flow.encoder))
    embeddings = torch.randn(1, tokens, 512, generator=torch.Generator().manual_seed(tokens))
    lengths = torch.tensor([float(tokens)])
    with torch.inference_mode():
        expected, _ = s3gen.flow.encoder(embeddings, lengths)
        got, masks = encoder(embeddings, lengths)
    assert got.shape == expected.shape == (1, 2 * tokens, 512) and masks.shape[-1] == 2 * tokens
    assert torch.allclose(got, expected, atol=1e-4)
    assert on_meta(encoder.part.module)


@pytest.mark.parametrize("frames", FRAMES)
def test_the_vocoder_on_onnx_runtime_matches_torch_and_keeps_its_source_in_torch(s3gen, onnx_hift, frames):
    mel = torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(frames)) - 4
    torch.manual_seed(1)
    expected, _ = s3gen.mel2wav.inference(mel)
    torch.manual_seed(1)
    got, _ = onnx_hift.inference(mel)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)
    assert on_meta(onnx_hift.conv_pre, onnx_hift.ups, onnx_hift.source_downs, onnx_hift.source_resblocks,
                   onnx_hift.resblocks, onnx_hift.conv_post)
    assert not on_meta(onnx_hift.f0_predictor, onnx_hift.m_source)


def vocoder_part(s3gen) -> onnx_cpu.OnnxPart:
    hift = copy.deepcopy(s3gen.mel2wav)
    return onnx_cpu.OnnxPart("vocoder", onnx_cpu._VocoderBody(hift), ("magnitude", "phase"), onnx_cpu.VOCODER_AXES)


def test_an_exported_part_is_kept_on_disk_and_found_again(s3gen, tmp_path, monkeypatch):
    monkeypatch.setenv("CHATTERBOX_STUDIO_CACHE", str(tmp_path))
    inputs = {"mel": torch.randn(1, 80, 60), "source_spectrum": torch.randn(1, 18, 60 * 120 + 1)}
    first = vocoder_part(s3gen)(inputs)
    files = list((tmp_path / "onnx").glob("vocoder-*.onnx"))
    assert len(files) == 1
    exported = files[0].stat().st_mtime_ns
    again = vocoder_part(s3gen)(inputs)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert files[0].stat().st_mtime_ns == exported


def test_a_part_onnx_cannot_export_stays_in_torch_and_says_so_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CHATTERBOX_STUDIO_CACHE", str(tmp_path))

    def refuse(*args, **kwargs):
        raise RuntimeError("no")

    class Doubling(torch.nn.Module):
        def forward(self, x):
            return 2 * x

    part = onnx_cpu.OnnxPart("test-part", Doubling(), ("y",), {"x": {0: "n"}, "y": {0: "n"}})
    monkeypatch.setattr(torch.onnx, "export", refuse)
    with caplog.at_level(logging.WARNING, logger="chatterbox.engine"):
        assert part({"x": torch.ones(2)})[0].tolist() == [2.0, 2.0]
        assert part({"x": torch.ones(3)})[0].tolist() == [2.0, 2.0, 2.0]
    assert [r.message for r in caplog.records].count("S3Gen's test-part stays in torch: ONNX export failed "
                                                      "(RuntimeError: no)") == 1


def test_a_whole_synthesis_on_onnx_runtime_sounds_as_in_torch(engine, tiny_checkpoint, tmp_path):
    """`app.py synth` with ONNX Runtime on speaks the same tokens as the suite's fast engine, whose S3Gen runs in
    torch (its flow estimator in bfloat16 on a CPU that computes it natively), so its audio is that engine's up to
    rounding."""
    run = synth("Hello there.", "--checkpoint-dir", tiny_checkpoint, "-o", "onnx.wav", "--seed", 3, cwd=tmp_path,
                env={"CHATTERBOX_ONNX": "on"})
    assert run.returncode == 0, run.stderr
    assert "S3Gen on ONNX Runtime" in run.stderr
    made = audio.decode((tmp_path / "onnx.wav").read_bytes(), 24000)
    expected = engine.synthesize(SynthesisRequest("Hello there.", seed=3, max_tokens_per_chunk=TEST_CHUNK_TOKENS))
    assert made.shape == expected.samples.shape
    difference = np.linalg.norm(made - expected.samples) / np.linalg.norm(expected.samples)
    assert difference < 0.02, difference
