"""How the loaded model computes: exactly as upstream does, or faster at a small, documented cost in precision.

exact: float32 throughout and upstream's own 10 flow-matching steps; speech tokens and audio equal upstream's for
       the same seed (the parity test pins this).
fast:  the chunks of a long text go through the model four at a time (the first alone, so it plays sooner):
       T3 samples them together in the studio's own token loop (engine/decoding/loop.py), which runs a voice's
       conditioning through T3 once and remembers it for the next requests, and keeps the multilingual model's
       alignment checks for every chunk; then S3Gen vocodes each group as one sequence, cut apart
       afterwards (the flow runs over the voice's reference prompt once per group, not once per chunk; each
       chunk's audio hears its neighbours). Turbo's GPT-2 computes its GELU in one fused operation (the same tanh
       formula, rounded differently). On x86 CPUs, T3's linear layers run as int8 with per-channel weight scales
       (dynamic quantization), on CUDA GPUs in bfloat16 (sampling stays float32). Where the hardware computes
       bfloat16 natively (CUDA GPUs, and recent x86 CPUs without ONNX Runtime), S3Gen's flow estimator runs in
       bfloat16 while the flow's state stays float32. On CPUs, S3Gen's flow encoder and estimator and its
       vocoder run in float32 on ONNX Runtime (engine/decoding/onnx_cpu.py). S3Gen takes 5 flow-matching steps
       instead of 10. Output stays deterministic per seed.
       On CUDA GPUs the next chunks of up to 16 requests are sampled in one T3 batch (`request_batch`), each row
       masked from the others, so a request's tokens depend on its batch-mates through rounding alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable

import torch

from . import onnx_cpu
from .loop import SpeechTokenLoop

PRECISIONS = ("fast", "exact")
UPSTREAM_FLOW_STEPS = 10
FAST_FLOW_STEPS = 5
FAST_REFERENCE_SECONDS = 4.0
S3_TOKENS_PER_SECOND = 25  # S3Gen's reference prompt: 25 speech tokens and 50 mel frames per second
FAST_CHUNK_BATCH = 4
CUDA_REQUEST_BATCH = 16


@dataclass(frozen=True)
class Acceleration:
    """What one load of the model does differently from upstream."""

    token_loop: bool = False
    fused_gelu: bool = False
    int8_t3: bool = False
    bf16_t3: bool = False
    bf16_flow: bool = False
    onnx_s3gen: bool = False
    flow_steps: int = UPSTREAM_FLOW_STEPS
    reference_seconds: float | None = None  # how much of the reference prompt S3Gen's flow hears; None: all
    chunk_batch: int = 1
    request_batch: int = 1

    @property
    def batch_prompts(self) -> int:
        """The most chunks one T3 batch samples, of one request or several."""
        return max(self.chunk_batch, self.request_batch)

    def for_model(self, gpt2: bool) -> "Acceleration":
        """This acceleration as one model gets it: with a fused GELU only where T3 is a GPT-2 (Turbo's)."""
        return replace(self, fused_gelu=self.fused_gelu and gpt2)

    def describe(self) -> str:
        changes = [name for name, on in (("own token loop", self.token_loop), ("fused GELU", self.fused_gelu),
                                          ("int8 T3", self.int8_t3),
                                          ("bfloat16 T3", self.bf16_t3), ("bfloat16 flow", self.bf16_flow),
                                          ("S3Gen on ONNX Runtime", self.onnx_s3gen)) if on]
        if self.flow_steps != UPSTREAM_FLOW_STEPS:
            changes.append(f"{self.flow_steps} flow steps")
        if self.reference_seconds is not None:
            changes.append(f"a {self.reference_seconds:g} s reference prompt")
        if self.chunk_batch > 1:
            changes.append(f"{self.chunk_batch} chunks per batch")
        if self.request_batch > 1:
            changes.append(f"up to {self.request_batch} requests per batch")
        return ", ".join(changes) or "exact (as upstream)"


def plan(precision: str, device: str, flow_steps: int | None = None, request_batch: int | None = None,
         reference_seconds: float | None = None) -> Acceleration:
    """The acceleration `precision` asks for, limited to what `device` does well. Only the studio's token loop
    batches requests together: by default on CUDA GPUs, where a batch costs little more than one request; on a CPU
    the int8 layers scale their inputs per batch, so there a request would sound different in company."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'; use one of {', '.join(PRECISIONS)}.")
    fast = precision == "fast"
    steps = flow_steps or (FAST_FLOW_STEPS if fast else UPSTREAM_FLOW_STEPS)
    reference_seconds = reference_seconds or (FAST_REFERENCE_SECONDS if fast else None)
    requests = request_batch or (CUDA_REQUEST_BATCH if device.startswith("cuda") else 1)
    onnx = fast and device == "cpu" and onnx_cpu.available()
    return Acceleration(token_loop=fast, fused_gelu=fast, int8_t3=fast and _int8_cpu(device),
                        bf16_t3=fast and device.startswith("cuda") and _native_bf16(device),
                        bf16_flow=fast and _native_bf16(device) and not onnx, onnx_s3gen=onnx,
                        flow_steps=steps, reference_seconds=reference_seconds,
                        chunk_batch=FAST_CHUNK_BATCH if fast else 1,
                        request_batch=requests if fast else 1)


def _int8_cpu(device: str) -> bool:
    return device == "cpu" and "fbgemm" in torch.backends.quantized.supported_engines


def _native_bf16(device: str) -> bool:
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    if device == "cpu":
        checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
        return any(check is not None and check() for check in checks)
    return False


def apply(upstream, acceleration: Acceleration, watches_alignment: bool = False) -> SpeechTokenLoop | None:
    """Change the loaded upstream model in place as `acceleration` says; the studio's token loop for it, if any,
    keeping upstream's alignment checks if the variant `watches_alignment`. T3 runs in bfloat16 only where the
    studio's loop runs it, which casts around it."""
    loop = acceleration.token_loop
    head = upstream.t3.speech_head
    if acceleration.fused_gelu:
        fuse_gpt2_gelu(upstream.t3.tfmr)
    if acceleration.int8_t3:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        int8 = {torch.nn.Linear: per_channel_dynamic_qconfig}
        replace_gpt2_projections(upstream.t3.tfmr)
        quantize_dynamic(upstream.t3.tfmr, int8, inplace=True)
        head = quantize_dynamic(torch.nn.Sequential(copy.deepcopy(head)), int8)
    if acceleration.bf16_t3:
        upstream.t3.tfmr.to(torch.bfloat16)
    if acceleration.bf16_flow:
        decoder = upstream.s3gen.flow.decoder
        decoder.estimator = Bfloat16Estimator(decoder.estimator)
    if acceleration.onnx_s3gen:
        decoder = upstream.s3gen.flow.decoder
        decoder.estimator = onnx_cpu.OnnxEstimator(decoder.estimator)
        upstream.s3gen.flow.encoder = onnx_cpu.OnnxEncoder(upstream.s3gen.flow.encoder)
        onnx_cpu.vocode_with_onnx(upstream.s3gen.mel2wav)
    return SpeechTokenLoop(upstream.t3, head, watches_alignment) if loop else None


def fuse_gpt2_gelu(module: torch.nn.Module) -> None:
    """Swap GPT-2's GELU (Turbo's backbone), which the transformers library writes as seven tensor operations, for
    torch's fused GELU with the same tanh approximation. A Llama backbone has none, and is left as it is."""
    from transformers.activations import NewGELUActivation

    _swap_modules(module, NewGELUActivation, lambda gelu: torch.nn.GELU(approximate="tanh"))


def replace_gpt2_projections(module: torch.nn.Module) -> None:
    """Swap GPT-2's `Conv1D` projections (Turbo's backbone) for the `nn.Linear` layers they are, with the weight
    transposed, so that quantization finds them."""
    from transformers.pytorch_utils import Conv1D

    def as_linear(conv: Conv1D) -> torch.nn.Linear:
        linear = torch.nn.Linear(conv.nx, conv.nf, device=conv.weight.device, dtype=conv.weight.dtype)
        linear.weight.data.copy_(conv.weight.data.t())
        linear.bias.data.copy_(conv.bias.data)
        return linear

    _swap_modules(module, Conv1D, as_linear)


def _swap_modules(
    module: torch.nn.Module, kind: type, replacement: Callable[[torch.nn.Module], torch.nn.Module]
) -> None:
    """Replace every submodule of type `kind` inside `module` with `replacement(submodule)`."""
    for name, child in module.named_children():
        if isinstance(child, kind):
            setattr(module, name, replacement(child))
        else:
            _swap_modules(child, kind, replacement)


class Bfloat16Estimator(torch.nn.Module):
    """The flow estimator computed in bfloat16. It reports float32, so upstream keeps the flow's state in float32."""

    dtype = torch.float32

    def __init__(self, estimator: torch.nn.Module):
        super().__init__()
        self.inner = estimator.to(torch.bfloat16)

    def forward(self, x, **inputs):
        cast = {k: v.bfloat16() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
        return self.inner(x.bfloat16(), **cast).float()


def shortened_reference(reference: dict, seconds: float | None) -> dict:
    """S3Gen's reference (upstream's `ref_dict`) with its prompt cut to the first `seconds`, speech tokens and mel
    frames alike; the speaker embedding stays the whole clip's. As it is when `seconds` is None or longer."""
    tokens = int(seconds * S3_TOKENS_PER_SECOND) if seconds else 0
    if not tokens or reference["prompt_token"].size(1) <= tokens:
        return reference
    frames = 2 * tokens
    cut = {"prompt_token": reference["prompt_token"][:, :tokens], "prompt_feat": reference["prompt_feat"][:, :frames],
           "prompt_token_len": torch.full_like(reference["prompt_token_len"], tokens)}
    if reference.get("prompt_feat_len") is not None:
        cut["prompt_feat_len"] = torch.full_like(reference["prompt_feat_len"], frames)
    return {**reference, **cut}
