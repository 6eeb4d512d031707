"""S3Gen's heavy parts run by ONNX Runtime on a CPU, in `fast` precision: the flow's encoder and estimator and the
vocoder's convolution stack (its STFT and inverse STFT stay in torch, which ONNX cannot export). All three compute
in float32 as torch does (they agree to about 1e-5); ONNX Runtime's fused CPU kernels take about half the time of
torch's eager ones here (bench/RESULTS.md). Each part is exported on its first call, from that call's own inputs,
and kept on disk under a key made of its weights, so a restart or another process with the same weights loads it
in a fraction of a second. Once ONNX Runtime holds a part's weights, torch's copy of them is freed, so the
part costs no memory twice. If export or loading fails, the part stays in torch and the log says so once."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch

from ..config import studio_cache

log = logging.getLogger("chatterbox.engine")

FORMAT_VERSION = "1"  # bump when what is exported changes


def available() -> bool:
    """Whether ONNX Runtime and the exporter's `onnx` package can be imported, unless CHATTERBOX_ONNX=off turns
    this path off (S3Gen then runs in torch)."""
    if os.environ.get("CHATTERBOX_ONNX", "").lower() == "off":
        return False
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


class OnnxPart:
    """`module` (positional tensor inputs, the tensors `outputs` names) run by ONNX Runtime once exported; `axes`
    names, per input and output, the axes whose size changes from call to call. Every call gives the inputs the
    first call gave, by name and in order. Once ONNX Runtime runs the part, torch's copy of `module`'s weights is
    freed."""

    def __init__(self, name: str, module: torch.nn.Module, outputs: tuple[str, ...], axes: dict[str, dict[int, str]]):
        self.name, self.module, self.outputs, self.axes = name, module.eval(), outputs, axes
        self.session = None
        self.tried = False

    def __call__(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        if not self.tried:
            self.tried = True
            self.session = self._session(inputs)
            if self.session is not None:
                self.module.to_empty(device="meta")  # ONNX Runtime has its own copy
        if self.session is None:
            with torch.inference_mode():
                outputs = self.module(*inputs.values())
            return list(outputs) if isinstance(outputs, tuple) else [outputs]
        feed = {name: tensor.detach().cpu().numpy() for name, tensor in inputs.items()}
        return [torch.from_numpy(array) for array in self.session.run(None, feed)]

    def _session(self, inputs: dict[str, torch.Tensor]):
        import onnxruntime

        try:
            path = studio_cache() / "onnx" / f"{self.name}-{self._key(inputs)}.onnx"
            if not path.exists():
                self._export(inputs, path)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.enable_cpu_mem_arena = False  # activations are freed after each call, not kept for the next
            options.enable_mem_pattern = False
            return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # a model ONNX cannot take runs as it is, in torch
            log.warning("S3Gen's %s stays in torch: ONNX export failed (%s: %s)", self.name,
                        error.__class__.__name__, str(error)[:200])
            return None

    def _key(self, inputs: dict[str, torch.Tensor]) -> str:
        """A digest of the weights, the inputs' names and ranks and the versions that shape the export."""
        import onnxruntime

        digest = hashlib.blake2b(digest_size=12)
        digest.update(f"{FORMAT_VERSION} {torch.__version__} {onnxruntime.__version__}".encode())
        digest.update(repr([(name, tensor.dim(), tensor.dtype) for name, tensor in inputs.items()]).encode())
        for name, tensor in self.module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def _export(self, inputs: dict[str, torch.Tensor], path: Path) -> None:
        """Export with the call's inputs as the example, then move the file into place whole."""
        examples = tuple(tensor.detach().clone() for tensor in inputs.values())
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python branches, which these shapes never flip
            torch.onnx.export(self.module, examples, buffer, input_names=list(inputs), output_names=list(self.outputs),
                              dynamic_axes={name: self.axes[name] for name in (*inputs, *self.outputs)},
                              opset_version=17)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as part:
            part.write(buffer.getvalue())
        os.chmod(part.name, 0o644)
        os.replace(part.name, path)
        log.info("S3Gen's %s exported to ONNX: %s", self.name, path)


ROWS, MEL = {0: "batch"}, {0: "batch", 2: "frames"}
ESTIMATOR_AXES = {"x": MEL, "mask": MEL, "mu": MEL, "cond": MEL, "t": ROWS, "r": ROWS, "spks": ROWS, "velocity": MEL}
ENCODER_AXES = {"tokens": {0: "batch", 1: "tokens"}, "lengths": ROWS, "hidden": {0: "batch", 1: "frames"},
                "masks": MEL}
SPECTRUM = {0: "batch", 2: "spectrum_frames"}
VOCODER_AXES = {"mel": MEL, "source_spectrum": SPECTRUM, "magnitude": SPECTRUM, "phase": SPECTRUM}


class _PositionalEstimator(torch.nn.Module):
    """The flow estimator with its inputs in a fixed order, as the exporter needs them."""

    def __init__(self, estimator: torch.nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.estimator, self.names = estimator, names

    def forward(self, *tensors):
        return self.estimator(**dict(zip(self.names, tensors)))


class OnnxEstimator(torch.nn.Module):
    """A drop-in for S3Gen's flow estimator. Upstream calls it with keywords, the same ones every time for one
    model (meanflow's adds `r`); the part is made for those of the first call."""

    dtype = torch.float32

    def __init__(self, estimator: torch.nn.Module):
        super().__init__()
        self.inner = estimator
        self.part: OnnxPart | None = None

    def forward(self, x, mask, mu, t, spks=None, cond=None, r=None):
        inputs = {name: value for name, value in
                  (("x", x), ("mask", mask), ("mu", mu), ("t", t), ("spks", spks), ("cond", cond), ("r", r))
                  if value is not None}
        if self.part is None:
            self.part = OnnxPart("flow-estimator", _PositionalEstimator(self.inner, tuple(inputs)), ("velocity",),
                                 ESTIMATOR_AXES)
        return self.part(inputs)[0]


class OnnxEncoder(torch.nn.Module):
    """A drop-in for the flow's conformer encoder as S3Gen's inference calls it: token embeddings and their
    lengths in, hidden states (twice as many frames) and their masks out."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.part = OnnxPart("flow-encoder", encoder, ("hidden", "masks"), ENCODER_AXES)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor):
        return tuple(self.part({"tokens": tokens, "lengths": lengths}))


class _VocoderBody(torch.nn.Module):
    """HiFT's `decode` between its STFT of the source and its inverse STFT: magnitude and phase from the mel and
    the source's spectrum. It holds only the layers it computes with; HiFT's f0 predictor and harmonic source stay
    in torch."""

    def __init__(self, hift: torch.nn.Module):
        super().__init__()
        self.conv_pre, self.ups, self.conv_post = hift.conv_pre, hift.ups, hift.conv_post
        self.source_downs, self.source_resblocks = hift.source_downs, hift.source_resblocks
        self.resblocks = hift.resblocks
        self.reflection_pad, self.lrelu_slope = hift.reflection_pad, hift.lrelu_slope
        self.kernels, self.bins = hift.num_kernels, hift.istft_params["n_fft"] // 2 + 1

    def forward(self, mel: torch.Tensor, source_spectrum: torch.Tensor):
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(torch.nn.functional.leaky_relu(x, self.lrelu_slope))
            if i == len(self.ups) - 1:
                x = self.reflection_pad(x)
            x = x + self.source_resblocks[i](self.source_downs[i](source_spectrum))
            blocks = self.resblocks[i * self.kernels:(i + 1) * self.kernels]
            x = sum(block(x) for block in blocks) / self.kernels
        x = self.conv_post(torch.nn.functional.leaky_relu(x))
        return torch.exp(x[:, :self.bins, :]), torch.sin(x[:, self.bins:, :])


def vocode_with_onnx(hift: torch.nn.Module) -> None:
    """Make `hift.decode` run its convolution stack through ONNX Runtime."""
    body = OnnxPart("vocoder", _VocoderBody(hift), ("magnitude", "phase"), VOCODER_AXES)

    def decode(x: torch.Tensor, s: torch.Tensor = torch.zeros(1, 1, 0)) -> torch.Tensor:
        real, imaginary = hift._stft(s.squeeze(1))
        magnitude, phase = body({"mel": x, "source_spectrum": torch.cat([real, imaginary], dim=1)})
        return torch.clamp(hift._istft(magnitude, phase), -hift.audio_limit, hift.audio_limit)

    hift.decode = decode
