"""How each architecture of Chatterbox loads, and what it does its own way once loaded.

Each variant is loaded from Chatterbox's own file layout. The T3 backbone's depth and MLP width are read
from the weights, so the released checkpoints, fine-tuned or smaller ones, and the tests' tiny one all load
through this same code. A variant's `architecture` names its loader in LOADERS: the English model's, or one that
changes what the multilingual model or Turbo does differently.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..decoding.acceleration import Acceleration, apply as apply_acceleration
from ..decoding.loop import Sampling, SpeechPrompt
from ..errors import ModelUnavailable
from .model import LoadedModel
from .upstream import (derived_backbone, hooks_removed_after, install, offline_cangjie_converter,
                       without_alignment_analyzer)
from .variants import VariantSpec
from .weights import read_state


class EnglishLoader:
    """The English model: a Llama T3, S3Gen with flow matching, upstream's English tokenizer. The other
    architectures' loaders start from it and change what differs."""

    s3gen_strict = False  # as upstream's `from_local` loads it
    meanflow = False

    def build(self, spec: VariantSpec, directory: Path, device: str):
        """Upstream's model for `spec`, built from the files in `directory` onto `device`."""
        from chatterbox.models.s3gen import S3Gen
        from chatterbox.models.voice_encoder import VoiceEncoder

        module_name, class_name = spec.upstream_class.split(":")
        module = importlib.import_module(module_name)
        ve = VoiceEncoder()
        ve.load_state_dict(read_state(directory / spec.voice_encoder_file))
        t3 = self.t3(spec, read_state(directory / spec.t3_file))
        s3gen = S3Gen(meanflow=self.meanflow)
        s3gen.load_state_dict(read_state(directory / spec.s3gen_file), strict=self.s3gen_strict)
        tokenizer = self.tokenizer(directory)
        conds = None
        if (directory / "conds.pt").exists():
            conds = module.Conditionals.load(directory / "conds.pt", map_location="cpu").to(device)
        for part in (ve, t3, s3gen):
            part.to(device).eval()
        return getattr(module, class_name)(t3, s3gen, ve, tokenizer, device, conds=conds)

    def t3(self, spec: VariantSpec, state: dict):
        """T3 with the weights `state`, configured as upstream configures `spec`'s."""
        return _build_t3(self.t3_config(spec), state)

    def t3_config(self, spec: VariantSpec):
        from chatterbox.models.t3.modules.t3_config import T3Config

        hp = T3Config.english_only()
        hp.llama_config_name = spec.backbone_config
        return hp

    def tokenizer(self, directory: Path):
        from chatterbox.models.tokenizers import EnTokenizer

        return EnTokenizer(str(directory / "tokenizer.json"))

    def text_tokens(self, upstream, text: str, language: str | None, device: str) -> torch.Tensor:
        """Upstream's punctuation clean-up and tokenization, with start and stop tokens: one row."""
        from chatterbox.tts import punc_norm

        return _framed(upstream, upstream.tokenizer.text_to_tokens(punc_norm(text)), device)

    def reference(self, upstream, wav24k: np.ndarray) -> np.ndarray:
        """A 24 kHz reference clip as upstream's `prepare_conditionals` takes it."""
        return wav24k

    def speech_tokens(self, t3, prompt: SpeechPrompt, sampling: Sampling) -> torch.Tensor:
        """Upstream's own T3 sampling call for one prompt, as its `generate` makes it; invalid tokens dropped."""
        from chatterbox.models.s3tokenizer import drop_invalid_tokens

        text = prompt.text_tokens
        tokens = t3.inference(t3_cond=prompt.conditioning, text_tokens=torch.cat([text, text]),
                              max_new_tokens=prompt.max_new_tokens, temperature=sampling.temperature,
                              cfg_weight=sampling.cfg_weight, repetition_penalty=sampling.repetition_penalty,
                              min_p=sampling.min_p, top_p=sampling.top_p)
        return drop_invalid_tokens(tokens[0])

    def waveform(self, s3gen, speech_tokens: torch.Tensor, reference: dict, flow_steps: int) -> torch.Tensor:
        """S3Gen's waveform (1, samples) for `speech_tokens` in the voice of `reference`."""
        wav, _ = s3gen.inference(speech_tokens=speech_tokens, ref_dict=reference, n_cfm_timesteps=flow_steps)
        return wav


class MultilingualLoader(EnglishLoader):
    """The multilingual models: the English model's parts with other weights, a tokenizer that takes a language id,
    and an upstream T3 loop that analyzes the alignment of speech to text where the variant watches it (V2, not
    V3)."""

    s3gen_strict = True

    def t3_config(self, spec: VariantSpec):
        from chatterbox.models.t3.modules.t3_config import T3Config

        hp = T3Config.multilingual()
        hp.llama_config_name = spec.backbone_config
        return hp if spec.watches_alignment else without_alignment_analyzer(hp)

    def tokenizer(self, directory: Path):
        return multilingual_tokenizer(directory)

    def text_tokens(self, upstream, text: str, language: str | None, device: str) -> torch.Tensor:
        from chatterbox.mtl_tts import punc_norm

        tokens = upstream.tokenizer.text_to_tokens(punc_norm(text), language_id=(language or "en").lower())
        return _framed(upstream, tokens, device)

    def speech_tokens(self, t3, prompt: SpeechPrompt, sampling: Sampling) -> torch.Tensor:
        with hooks_removed_after(t3.tfmr):
            return super().speech_tokens(t3, prompt, sampling)


class TurboLoader(EnglishLoader):
    """Turbo and Nano: a GPT-2 T3 that samples without guidance, S3Gen with meanflow in two steps, a GPT-2
    tokenizer, and a reference clip normalized in loudness."""

    s3gen_strict = True
    meanflow = True

    def t3(self, spec: VariantSpec, state: dict):
        t3 = super().t3(spec, state)
        del t3.tfmr.wte  # as upstream's `from_local` does: T3 hands GPT-2 its own embeddings
        return t3

    def t3_config(self, spec: VariantSpec):
        return turbo_t3_config(spec.backbone_config)

    def tokenizer(self, directory: Path):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(directory)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def text_tokens(self, upstream, text: str, language: str | None, device: str) -> torch.Tensor:
        from chatterbox.tts_turbo import punc_norm

        return upstream.tokenizer(punc_norm(text), return_tensors="pt").input_ids.to(device)

    def reference(self, upstream, wav24k: np.ndarray) -> np.ndarray:
        from chatterbox.models.s3gen import S3GEN_SR

        return upstream.norm_loudness(wav24k, S3GEN_SR)

    def speech_tokens(self, t3, prompt: SpeechPrompt, sampling: Sampling) -> torch.Tensor:
        return t3.inference_turbo(t3_cond=prompt.conditioning, text_tokens=prompt.text_tokens,
                                  temperature=sampling.temperature, top_p=sampling.top_p,
                                  repetition_penalty=sampling.repetition_penalty, max_gen_len=prompt.max_new_tokens - 1)

    def waveform(self, s3gen, speech_tokens: torch.Tensor, reference: dict, flow_steps: int) -> torch.Tensor:
        """Upstream's meanflow S3Gen call: two steps whatever the acceleration, three silence tokens after the
        speech."""
        from chatterbox.models.s3gen.const import S3GEN_SIL

        silence = torch.tensor([S3GEN_SIL] * 3, dtype=torch.long, device=speech_tokens.device)
        wav, _ = s3gen.inference(speech_tokens=torch.cat([speech_tokens, silence]), ref_dict=reference,
                                 n_cfm_timesteps=2)
        return wav


LOADERS: dict[str, EnglishLoader] = {"english": EnglishLoader(), "multilingual": MultilingualLoader(),
                                     "turbo": TurboLoader()}


def load(spec: VariantSpec, directory: Path, device: str, acceleration: Acceleration = Acceleration()) -> LoadedModel:
    """Build `spec` from the files in `directory` onto `device`, accelerated as asked (see `accelerated`)."""
    loader = LOADERS[spec.architecture]
    install()
    try:
        upstream = loader.build(spec, directory, device)
        token_loop = apply_acceleration(upstream, acceleration, watches_alignment=spec.watches_alignment)
    except ModelUnavailable:
        raise
    except Exception as error:  # any failure to build the model from these files means the checkpoint is unusable
        raise ModelUnavailable(
            f"Could not load {spec.name} from {directory}: {error.__class__.__name__}: {str(error)[:300]}. "
            f"Check that the folder holds an intact Chatterbox checkpoint."
        ) from None
    return LoadedModel(spec, loader, upstream, device, acceleration, token_loop)


def accelerated(spec: VariantSpec, acceleration: Acceleration) -> Acceleration:
    """What of `acceleration` this variant takes: only a GPT-2 backbone (Turbo's) has a GELU to fuse."""
    return acceleration.for_model(gpt2=spec.backbone == "gpt2")


def multilingual_tokenizer(directory: Path):
    """Upstream's multilingual tokenizer for the checkpoint in `directory`, built without a network (see
    `offline_cangjie_converter`)."""
    from chatterbox.models.tokenizers import MTLTokenizer

    offline_cangjie_converter()
    return MTLTokenizer(str(directory / "grapheme_mtl_merged_expanded_v1.json"))


def turbo_t3_config(backbone_config: str):
    """Turbo's T3 settings (and Nano's, with another backbone), as upstream's `ChatterboxTurboTTS.from_local` sets
    them."""
    from chatterbox.models.t3.modules.t3_config import T3Config

    hp = T3Config(text_tokens_dict_size=50276)
    hp.llama_config_name = backbone_config
    hp.speech_tokens_dict_size = 6563
    hp.input_pos_emb = None
    hp.speech_cond_prompt_len = 375
    hp.use_perceiver_resampler = False
    hp.emotion_adv = False
    return hp


def _framed(upstream, tokens: torch.Tensor, device: str) -> torch.Tensor:
    """Text tokens on `device` between T3's start and stop text tokens."""
    tokens = F.pad(tokens.to(device), (1, 0), value=upstream.t3.hp.start_text_token)
    return F.pad(tokens, (0, 1), value=upstream.t3.hp.stop_text_token)


def _backbone_shape(state: dict) -> tuple[int, int]:
    """(layer count, MLP width) of a T3 backbone, read from its weight names and shapes."""
    layers = {int(k.split(".")[2]) for k in state if k.startswith(("tfmr.layers.", "tfmr.h."))}
    if not layers:
        raise ModelUnavailable("The T3 weights hold no transformer layers; the checkpoint is not a Chatterbox T3.")
    if "tfmr.layers.0.mlp.gate_proj.weight" in state:
        width = state["tfmr.layers.0.mlp.gate_proj.weight"].shape[0]
    else:
        width = state["tfmr.h.0.mlp.c_fc.weight"].shape[1]
    return max(layers) + 1, width


def _fitted_backbone(name: str, layers: int, width: int) -> str:
    """The backbone config `name` if it has `layers` layers and MLP width `width`, else one derived from it that
    does."""
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    base = LLAMA_CONFIGS[name]
    gpt2 = base.get("model_type") == "gpt2"
    layer_key, width_key = ("n_layer", "n_inner") if gpt2 else ("num_hidden_layers", "intermediate_size")
    if base.get(layer_key) == layers and (base.get(width_key) or 4 * base["hidden_size"]) == width:
        return name
    return derived_backbone(name, **{layer_key: layers, width_key: width})


def _build_t3(hp, state: dict):
    """A T3 whose backbone config matches the weights' depth and width, then loaded with them."""
    from chatterbox.models.t3 import T3

    hp.llama_config_name = _fitted_backbone(hp.llama_config_name, *_backbone_shape(state))
    t3 = T3(hp)
    result = t3.load_state_dict(state, strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith("tfmr.wte")]
    if result.missing_keys or unexpected:
        raise ModelUnavailable(
            f"The T3 weights do not fit the {hp.llama_config_name} architecture "
            f"(missing {result.missing_keys[:3]}, unexpected {unexpected[:3]}); is this a Chatterbox checkpoint?"
        )
    return t3


def resolve_device(requested: str) -> str:
    """`auto` picks cuda, then mps, then cpu; a named device that is missing is a clear error."""
    requested = requested.lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(
            "Device 'cuda' was asked for, but this PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). "
            "Use --device cpu, or install a CUDA build of torch (launch.bat does on Windows)."
        )
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelUnavailable("Device 'mps' was asked for, but Apple's Metal backend is not available; use --device cpu.")
    if requested not in ("cpu", "mps") and not requested.startswith("cuda"):
        raise ModelUnavailable(f"Unknown device '{requested}'; use auto, cuda, cuda:N, mps or cpu.")
    return requested
