"""The three Chatterbox variants: where their weights come from, how they load, and one model call.

Each variant is loaded from Chatterbox's own file layout. The T3 backbone's depth and MLP width are read
from the weights, so the released checkpoints, fine-tuned or smaller ones, and the tests' tiny one all load
through this same code.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .acceleration import Acceleration, apply as apply_acceleration
from .decoding import Sampling, SpeechPrompt, SpeechTokenLoop
from .errors import InvalidRequest, ModelUnavailable, SynthesisFailed

log = logging.getLogger(__name__)

SPEECH_VOCAB = 6561  # token ids at or above this are control tokens, dropped before S3Gen
SAMPLES_PER_TOKEN = 960  # S3Gen makes 2 mel frames per speech token and 480 samples (at 24 kHz) per frame
JOINT_VOCODE_TOKENS = 1000  # the most speech tokens upstream's `generate` vocodes in one call
SHORTEST_ANALYZED_TEXT = 6  # text tokens (start, language and stop included) upstream's alignment analyzer needs


@dataclass(frozen=True)
class VariantSpec:
    """What distinguishes one Chatterbox variant on disk and in use."""

    name: str
    repo_id: str
    t3_file: str
    files: tuple[str, ...]
    ignores: tuple[str, ...] = ()
    multilingual: bool = False
    defaults: tuple[tuple[str, float], ...] = ()  # where upstream's `generate` defaults differ from the English model's

    def missing_files(self, directory: Path) -> list[str]:
        return [f for f in self.files if f != "conds.pt" and not (directory / f).exists()]


VARIANTS = {
    "chatterbox": VariantSpec(
        "chatterbox", "ResembleAI/chatterbox", "t3_cfg.safetensors",
        ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json", "conds.pt"),
    ),
    "chatterbox-multilingual": VariantSpec(
        "chatterbox-multilingual", "ResembleAI/chatterbox", "t3_mtl23ls_v2.safetensors",
        ("ve.pt", "t3_mtl23ls_v2.safetensors", "s3gen.pt", "grapheme_mtl_merged_expanded_v1.json", "conds.pt",
         "Cangjie5_TC.json"),
        multilingual=True, defaults=(("repetition_penalty", 2.0),),
    ),
    "chatterbox-turbo": VariantSpec(
        "chatterbox-turbo", "ResembleAI/chatterbox-turbo", "t3_turbo_v1.safetensors",
        ("ve.safetensors", "t3_turbo_v1.safetensors", "s3gen_meanflow.safetensors", "conds.pt",
         "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
         "added_tokens.json"),
        ignores=("cfg_weight", "exaggeration", "min_p"), defaults=(("top_p", 0.95),),
    ),
}


def locate_weights(spec: VariantSpec, checkpoint_dir: Path | None, progress: Callable[[str], None]) -> Path:
    """The directory holding `spec`'s files: the given checkpoint directory, or a download from the hub."""
    if checkpoint_dir is not None:
        missing = spec.missing_files(checkpoint_dir)
        if not missing:
            return checkpoint_dir
        raise ModelUnavailable(
            f"The checkpoint directory {checkpoint_dir} has no {spec.name} weights (missing: {', '.join(missing)}). "
            f"Point --checkpoint-dir at a folder with Chatterbox's files, or leave it out to download "
            f"{spec.repo_id} from Hugging Face."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    progress(f"Getting {spec.name} weights from Hugging Face ({spec.repo_id})…")
    try:
        path = snapshot_download(repo_id=spec.repo_id, allow_patterns=list(spec.files))
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        raise ModelUnavailable(
            f"Could not download {spec.name} weights from Hugging Face ({error.__class__.__name__}). "
            f"Check the internet connection and try again, or on a connected machine run "
            f"`hf download {spec.repo_id} --local-dir chatterbox-weights`, copy that folder here "
            f"and start with --checkpoint-dir chatterbox-weights."
        ) from None
    directory = Path(path)
    missing = spec.missing_files(directory)
    if missing:
        raise ModelUnavailable(f"The download of {spec.repo_id} lacks {', '.join(missing)}; try again.")
    return directory


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


def _build_t3(hp, state: dict):
    """A T3 whose backbone config matches the weights' depth and width, then loaded with them."""
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    layers, width = _backbone_shape(state)
    base = LLAMA_CONFIGS[hp.llama_config_name]
    layer_key, width_key = ("n_layer", "n_inner") if base.get("model_type") == "gpt2" else ("num_hidden_layers", "intermediate_size")
    default_width = 4 * base["hidden_size"]
    if base.get(layer_key) != layers or (base.get(width_key) or default_width) != width:
        name = f"{hp.llama_config_name}_{layers}x{width}"
        LLAMA_CONFIGS.setdefault(name, {**copy.deepcopy(base), layer_key: layers, width_key: width})
        hp.llama_config_name = name
    t3 = T3(hp)
    result = t3.load_state_dict(state, strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith("tfmr.wte")]
    if result.missing_keys or unexpected:
        raise ModelUnavailable(
            f"The T3 weights do not fit the {hp.llama_config_name} architecture "
            f"(missing {result.missing_keys[:3]}, unexpected {unexpected[:3]}); is this a Chatterbox checkpoint?"
        )
    return t3


def _read_state(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"][0] if "model" in state else state


class LoadedModel:
    """One variant on one device, with the calls the synthesis pipeline makes."""

    def __init__(self, spec: VariantSpec, upstream, device: str, acceleration: Acceleration = Acceleration(),
                 token_loop: SpeechTokenLoop | None = None):
        self.spec = spec
        self.upstream = upstream
        self.device = device
        self.acceleration = acceleration
        self.token_loop = token_loop
        self.sample_rate = upstream.sr

    @property
    def builtin_conditionals(self):
        if self.upstream.conds is None:
            raise InvalidRequest("This checkpoint has no built-in voice (conds.pt); give a reference clip.", "voice")
        return self.upstream.conds

    def conditionals(self, wav24k: np.ndarray):
        """Speaker conditionals from a 24 kHz clip, as upstream's `prepare_conditionals` derives them."""
        from chatterbox.models.s3gen import S3GEN_SR
        from chatterbox.models.s3tokenizer import S3_SR
        from chatterbox.models.t3.modules.cond_enc import T3Cond
        from chatterbox.tts import Conditionals
        import librosa

        model = self.upstream
        if self.spec.name == "chatterbox-turbo":
            wav24k = model.norm_loudness(wav24k, S3GEN_SR)
        ref_16k = librosa.resample(wav24k, orig_sr=S3GEN_SR, target_sr=S3_SR)
        with torch.inference_mode():
            gen = model.s3gen.embed_ref(wav24k[: model.DEC_COND_LEN], S3GEN_SR, device=self.device)
            prompt_tokens = None
            if plen := model.t3.hp.speech_cond_prompt_len:
                prompt_tokens, _ = model.s3gen.tokenizer.forward([ref_16k[: model.ENC_COND_LEN]], max_len=plen)
                prompt_tokens = torch.atleast_2d(prompt_tokens).to(self.device)
            speaker = torch.from_numpy(model.ve.embeds_from_wavs([ref_16k], sample_rate=S3_SR))
            speaker = speaker.mean(axis=0, keepdim=True).to(self.device)
        t3 = T3Cond(speaker_emb=speaker, cond_prompt_speech_tokens=prompt_tokens,
                    emotion_adv=0.5 * torch.ones(1, 1, 1)).to(device=self.device)
        return Conditionals(t3, gen)

    def t3_conditioning(self, conds, exaggeration: float):
        """The T3 conditioning with this request's exaggeration (the cached conditionals stay untouched)."""
        from chatterbox.models.t3.modules.cond_enc import T3Cond

        current = conds.t3
        if float(exaggeration) == float(current.emotion_adv[0, 0, 0]):
            return current
        return T3Cond(speaker_emb=current.speaker_emb, cond_prompt_speech_tokens=current.cond_prompt_speech_tokens,
                      emotion_adv=exaggeration * torch.ones(1, 1, 1)).to(device=self.device)

    def text_tokens(self, text: str, language: str | None) -> torch.Tensor:
        """Upstream's punctuation clean-up and tokenization, with start and stop tokens: one row, no CFG copy."""
        model = self.upstream
        if self.spec.name == "chatterbox-turbo":
            from chatterbox.tts_turbo import punc_norm

            return model.tokenizer(punc_norm(text), return_tensors="pt").input_ids.to(self.device)
        if self.spec.multilingual:
            from chatterbox.mtl_tts import punc_norm

            tokens = model.tokenizer.text_to_tokens(punc_norm(text), language_id=(language or "en").lower())
        else:
            from chatterbox.tts import punc_norm

            tokens = model.tokenizer.text_to_tokens(punc_norm(text))
        tokens = F.pad(tokens.to(self.device), (1, 0), value=model.t3.hp.start_text_token)
        return F.pad(tokens, (0, 1), value=model.t3.hp.stop_text_token)

    @property
    def chunks_per_batch(self) -> int:
        """How many chunks of one text go through the model together: the studio's loop decodes them as one T3
        batch (upstream's path one after another), then S3Gen vocodes them as one sequence."""
        return self.acceleration.chunk_batch

    def speech_tokens(self, prompts: list[SpeechPrompt], sampling: Sampling) -> list[torch.Tensor]:
        """T3: each prompt's text to speech tokens, sampled as upstream samples them; control tokens dropped.
        Upstream's path takes the prompts one after another, each drawing from the global generator seeded with its
        seed as upstream's `generate` seeds it, and gives a prompt cancelled before its turn no tokens; the
        studio's token loop decodes them together and stops a cancelled prompt mid-chunk."""
        from chatterbox.models.s3tokenizer import drop_invalid_tokens

        with torch.inference_mode():
            if self.token_loop is None:
                rows = []
                for prompt in prompts:
                    if prompt.cancelled():
                        rows.append(torch.zeros(0, dtype=torch.long))
                        continue
                    torch.manual_seed(prompt.seed)
                    rows.append(self._upstream_speech_tokens(prompt, sampling))
            else:
                rows = [drop_invalid_tokens(row[0]) for row in self.token_loop(prompts, sampling)]
            return [tokens[tokens < SPEECH_VOCAB].to(self.device) for tokens in rows]

    def check_prompts(self, prompts: list[SpeechPrompt]) -> None:
        """Refuse a text upstream's own T3 loop fails on: in the multilingual model its alignment analyzer raises an
        IndexError on a text of five tokens or fewer (the studio's loop takes them)."""
        if self.token_loop is None and self.spec.multilingual and any(
                prompt.text_tokens.size(1) < SHORTEST_ANALYZED_TEXT for prompt in prompts):
            raise InvalidRequest("This text is too short for the multilingual model in the exact precision, whose "
                                 "upstream checks fail on a word or two; add a few words, or use --precision fast.",
                                 "text")

    def _upstream_speech_tokens(self, prompt: SpeechPrompt, sampling: Sampling) -> torch.Tensor:
        from chatterbox.models.s3tokenizer import drop_invalid_tokens

        t3, text, t3_cond = self.upstream.t3, prompt.text_tokens, prompt.conditioning
        if self.spec.name == "chatterbox-turbo":
            return t3.inference_turbo(t3_cond=t3_cond, text_tokens=text, temperature=sampling.temperature,
                                      top_p=sampling.top_p, repetition_penalty=sampling.repetition_penalty,
                                      max_gen_len=prompt.max_new_tokens - 1)
        with _hooks_removed_after(t3.tfmr):
            tokens = t3.inference(t3_cond=t3_cond, text_tokens=torch.cat([text, text]),
                                  max_new_tokens=prompt.max_new_tokens, temperature=sampling.temperature,
                                  cfg_weight=sampling.cfg_weight, repetition_penalty=sampling.repetition_penalty,
                                  min_p=sampling.min_p, top_p=sampling.top_p)
        return drop_invalid_tokens(tokens[0])

    def vocode(self, chunks: list[torch.Tensor], conds, seed: int) -> list[np.ndarray]:
        """S3Gen: each chunk's speech tokens to a 24 kHz waveform, watermarked as upstream does.
        Consecutive chunks are vocoded as one sequence of up to 1000 tokens (the most upstream's `generate` vocodes
        at once), so the flow runs over the reference prompt once for them rather than once each; the waveform is
        then cut at the chunks' token boundaries and each piece starts with upstream's trim fade. The vocoder draws
        random noise: after upstream's T3 path from where T3's draws left the global generator (as upstream's
        `generate` does), after the studio's loop, which keeps its own generators, from `seed`."""
        if any(tokens.numel() == 0 for tokens in chunks):
            raise SynthesisFailed("The model produced no speech for this text; try other wording or another seed.")
        if self.token_loop is not None:
            torch.manual_seed(seed)
        pieces = []
        with torch.inference_mode():
            for run in joint_runs([tokens.numel() for tokens in chunks], JOINT_VOCODE_TOKENS):
                wav = self._waveform(torch.cat([chunks[i] for i in run]), conds.gen)
                pieces += self._cut(wav, [chunks[i].numel() for i in run])
        return [self._watermarked(piece) for piece in pieces]

    def _waveform(self, speech_tokens: torch.Tensor, reference: dict) -> torch.Tensor:
        from chatterbox.models.s3gen.const import S3GEN_SIL

        s3gen = self.upstream.s3gen
        if self.spec.name == "chatterbox-turbo":
            silence = torch.tensor([S3GEN_SIL] * 3, dtype=torch.long, device=self.device)
            wav, _ = s3gen.inference(speech_tokens=torch.cat([speech_tokens, silence]), ref_dict=reference,
                                     n_cfm_timesteps=2)
        else:
            wav, _ = s3gen.inference(speech_tokens=speech_tokens, ref_dict=reference,
                                     n_cfm_timesteps=self.acceleration.flow_steps)
        return wav.squeeze(0)

    def _cut(self, wav: torch.Tensor, token_counts: list[int]) -> list[torch.Tensor]:
        """The waveform of consecutive chunks, cut at their token boundaries; the last piece keeps any tail."""
        ends = np.cumsum(token_counts[:-1]) * SAMPLES_PER_TOKEN
        pieces = list(torch.tensor_split(wav, [int(end) for end in ends]))
        trim = self.upstream.s3gen.trim_fade
        for piece in pieces[1:]:
            piece[: len(trim)] *= trim[: len(piece)]
        return pieces

    def _watermarked(self, wav: torch.Tensor) -> np.ndarray:
        marked = self.upstream.watermarker.apply_watermark(wav.detach().cpu().numpy(), sample_rate=self.sample_rate)
        return np.asarray(marked, dtype=np.float32)

    def release(self) -> None:
        """Drop the weights and give memory back to the device."""
        self.upstream = None
        import gc

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


@contextmanager
def _hooks_removed_after(module: torch.nn.Module) -> Iterator[None]:
    """Remove the forward hooks added to `module`'s submodules meanwhile: upstream's multilingual `T3.inference`
    hooks three attention layers for its alignment analyzer on every call and never removes them, so each request
    would leave three more hooks running on every later forward pass."""
    before = {id(sub): set(sub._forward_hooks) for sub in module.modules()}
    try:
        yield
    finally:
        for sub in module.modules():
            for key in set(sub._forward_hooks) - before.get(id(sub), set()):
                del sub._forward_hooks[key]


def load(spec: VariantSpec, directory: Path, device: str, acceleration: Acceleration = Acceleration()) -> LoadedModel:
    """Build `spec` from the files in `directory` onto `device`, accelerated as asked (see `accelerated`)."""
    try:
        upstream = _load_upstream(spec, directory, device)
        token_loop = apply_acceleration(upstream, acceleration)
    except ModelUnavailable:
        raise
    except Exception as error:  # any failure to build the model from these files means the checkpoint is unusable
        raise ModelUnavailable(
            f"Could not load {spec.name} from {directory}: {error.__class__.__name__}: {str(error)[:300]}. "
            f"Check that the folder holds an intact Chatterbox checkpoint."
        ) from None
    return LoadedModel(spec, upstream, device, acceleration, token_loop)


def accelerated(spec: VariantSpec, acceleration: Acceleration) -> Acceleration:
    """What of `acceleration` this variant takes: only Turbo's GPT-2 has a GELU to fuse."""
    return acceleration.for_model(gpt2=spec.name == "chatterbox-turbo")


def _quiet_sampling_bars() -> None:
    """Upstream draws a progress bar per T3 call; the studio reports progress per chunk instead."""
    from functools import partial

    import chatterbox.models.t3.t3 as t3_module
    from tqdm import tqdm

    t3_module.tqdm = partial(tqdm, disable=True)


def multilingual_tokenizer(directory: Path):
    """Upstream's multilingual tokenizer for the checkpoint in `directory`, built without a network: its Chinese
    converter reads Cangjie5_TC.json from that folder (upstream asks the hub for it) and goes without the Chinese
    word segmenter when its model cannot be downloaded (as upstream does when the package is missing)."""
    from chatterbox.models.tokenizers import MTLTokenizer, tokenizer as tokenizer_module

    if not getattr(tokenizer_module.ChineseCangjieConverter, "works_offline", False):
        tokenizer_module.ChineseCangjieConverter = _offline_converter_class(tokenizer_module.ChineseCangjieConverter)
    return MTLTokenizer(str(directory / "grapheme_mtl_merged_expanded_v1.json"))


def _offline_converter_class(upstream_converter: type) -> type:
    class OfflineCangjieConverter(upstream_converter):
        works_offline = True

        def _load_cangjie_mapping(self, model_dir=None):
            table = Path(model_dir or ".") / "Cangjie5_TC.json"
            if not table.exists():
                return super()._load_cangjie_mapping(model_dir)
            for entry in json.loads(table.read_text(encoding="utf-8")):
                word, code = entry.split("\t")[:2]
                self.word2cj[word] = code
                self.cj2word.setdefault(code, []).append(word)

        def _init_segmenter(self):
            try:
                super()._init_segmenter()
            except Exception as error:  # pkuseg downloads its model on first use and raises without a network
                log.warning("Chinese word segmentation is off: its model could not be had (%s).", error.__class__.__name__)
                self.segmenter = None

    return OfflineCangjieConverter


def turbo_t3_config():
    """Turbo's T3 settings, as upstream's `ChatterboxTurboTTS.from_local` sets them."""
    from chatterbox.models.t3.modules.t3_config import T3Config

    hp = T3Config(text_tokens_dict_size=50276)
    hp.llama_config_name = "GPT2_medium"
    hp.speech_tokens_dict_size = 6563
    hp.input_pos_emb = None
    hp.speech_cond_prompt_len = 375
    hp.use_perceiver_resampler = False
    hp.emotion_adv = False
    return hp


def _load_upstream(spec: VariantSpec, directory: Path, device: str):
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.voice_encoder import VoiceEncoder

    _quiet_sampling_bars()
    ve = VoiceEncoder()
    ve.load_state_dict(_read_state(directory / ("ve.pt" if spec.multilingual else "ve.safetensors")))
    t3_state = _read_state(directory / spec.t3_file)
    if spec.name == "chatterbox":
        from chatterbox.models.tokenizers import EnTokenizer
        from chatterbox.tts import ChatterboxTTS as Upstream, Conditionals

        t3 = _build_t3(T3Config.english_only(), t3_state)
        s3gen = S3Gen()
        s3gen.load_state_dict(_read_state(directory / "s3gen.safetensors"), strict=False)
        tokenizer = EnTokenizer(str(directory / "tokenizer.json"))
    elif spec.multilingual:
        from chatterbox.mtl_tts import ChatterboxMultilingualTTS as Upstream, Conditionals

        t3 = _build_t3(T3Config.multilingual(), t3_state)
        s3gen = S3Gen()
        s3gen.load_state_dict(_read_state(directory / "s3gen.pt"))
        tokenizer = multilingual_tokenizer(directory)
    else:
        from transformers import AutoTokenizer
        from chatterbox.tts_turbo import ChatterboxTurboTTS as Upstream, Conditionals

        t3 = _build_t3(turbo_t3_config(), t3_state)
        del t3.tfmr.wte
        s3gen = S3Gen(meanflow=True)
        s3gen.load_state_dict(_read_state(directory / "s3gen_meanflow.safetensors"), strict=True)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    conds = None
    if (directory / "conds.pt").exists():
        conds = Conditionals.load(directory / "conds.pt", map_location="cpu").to(device)
    for module in (ve, t3, s3gen):
        module.to(device).eval()
    return Upstream(t3, s3gen, ve, tokenizer, device, conds=conds)


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


def joint_runs(token_counts: list[int], limit: int) -> list[range]:
    """Consecutive chunks grouped into runs of at most `limit` tokens; a longer chunk makes a run alone."""
    runs, start, total = [], 0, 0
    for index, count in enumerate(token_counts):
        if index > start and total + count > limit:
            runs.append(range(start, index))
            start, total = index, 0
        total += count
    return runs + [range(start, len(token_counts))] if token_counts else runs


def token_budget(text: str, cap: int) -> int:
    """Speech tokens allowed for a text: generous for slow speech (25 tokens/s), yet a stop for babbling."""
    return max(1, min(cap, 50 + math.ceil(3.5 * len(text))))
