"""On a CPU, fast precision runs S3Gen's flow estimator and vocoder body on ONNX Runtime: the same float32 sums as
torch to about 1e-5, at any length and batch, kept on disk once exported; a part that cannot be exported stays in
torch."""

import logging

import pytest
import torch

from conftest import TEST_CHUNK_TOKENS, engine_on_cpu
from engine import SynthesisRequest
from engine.decoding import onnx_cpu

FRAMES = (150, 420)


@pytest.fixture(scope="module")
def onnx_engine(tiny_checkpoint, tmp_path_factory):
    """A fast engine with ONNX Runtime on, which the rest of the suite turns off (see conftest)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHATTERBOX_ONNX", "on")
        yield from engine_on_cpu(tmp_path_factory, tiny_checkpoint, max_chunk_tokens=TEST_CHUNK_TOKENS)


@pytest.fixture(scope="module")
def s3gen(onnx_engine):
    engine = onnx_engine
    engine.synthesize(SynthesisRequest("Hello there.", seed=1))  # through the whole engine, with ONNX Runtime
    with engine.using_model() as model:
        assert model.acceleration.onnx_s3gen and "S3Gen on ONNX Runtime" in engine.status()["precision"]
        yield model.upstream.s3gen


def estimator_inputs(frames: int, batch: int) -> dict:
    generator = torch.Generator().manual_seed(frames + batch)

    def noise(*shape):
        return torch.randn(*shape, generator=generator)

    return {"x": noise(batch, 80, frames), "mask": torch.ones(batch, 1, frames), "mu": noise(batch, 80, frames),
            "t": torch.rand(batch, generator=generator), "spks": noise(batch, 80), "cond": noise(batch, 80, frames)}


@pytest.mark.parametrize("frames", FRAMES)
@pytest.mark.parametrize("batch", [1, 2])
def test_the_flow_estimator_on_onnx_runtime_matches_torch_at_any_length_and_batch(s3gen, frames, batch):
    estimator = s3gen.flow.decoder.estimator
    assert isinstance(estimator, onnx_cpu.OnnxEstimator)
    inputs = estimator_inputs(frames, batch)
    with torch.inference_mode():
        expected = estimator.inner(**inputs)
        got = estimator(**inputs)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tokens", [40, 160])
def test_the_flow_encoder_on_onnx_runtime_matches_torch_at_any_length(s3gen, tokens):
    encoder = s3gen.flow.encoder
    assert isinstance(encoder, onnx_cpu.OnnxEncoder)
    embeddings = torch.randn(1, tokens, 512, generator=torch.Generator().manual_seed(tokens))
    lengths = torch.tensor([float(tokens)])
    with torch.inference_mode():
        expected, _ = encoder.part.module(embeddings, lengths)
        got, masks = encoder(embeddings, lengths)
    assert got.shape == expected.shape == (1, 2 * tokens, 512) and masks.shape[-1] == 2 * tokens
    assert torch.allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("frames", FRAMES)
def test_the_vocoder_on_onnx_runtime_matches_torch(s3gen, frames):
    hift = s3gen.mel2wav
    mel = torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(frames)) - 4
    torch.manual_seed(1)
    got, _ = hift.inference(mel)
    del hift.decode  # torch's own `decode`, from the class
    try:
        torch.manual_seed(1)
        expected, _ = hift.inference(mel)
    finally:
        onnx_cpu.vocode_with_onnx(hift)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def vocoder_part(s3gen) -> onnx_cpu.OnnxPart:
    return onnx_cpu.OnnxPart("vocoder", onnx_cpu._VocoderBody(s3gen.mel2wav), ("magnitude", "phase"),
                             onnx_cpu.VOCODER_AXES)


def test_an_exported_part_is_kept_on_disk_and_found_again(s3gen, tmp_path, monkeypatch):
    monkeypatch.setenv("CHATTERBOX_STUDIO_CACHE", str(tmp_path))
    part = vocoder_part(s3gen)
    inputs = {"mel": torch.randn(1, 80, 60), "source_spectrum": torch.randn(1, 18, 60 * 120 + 1)}
    first = part(inputs)
    files = list((tmp_path / "onnx").glob("vocoder-*.onnx"))
    assert len(files) == 1
    again = vocoder_part(s3gen)
    exported = files[0].stat().st_mtime_ns
    assert all(torch.equal(a, b) for a, b in zip(first, again(inputs)))
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
