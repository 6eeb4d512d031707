"""Every change the studio makes to upstream's own objects, in one place: why each exists, and for which version.

Written against chatterbox-tts 0.1.7 and transformers 5.2.0. `install()` applies the global changes (idempotent;
loading a model calls it); the others are functions and context managers that the loader, the loaded model and the
studio's token loop call where they need them.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from contextlib import contextmanager
from functools import cache, partial
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..decoding.alignment import WATCHING_ATTENTION, attention_watching_alignment

log = logging.getLogger(__name__)


def install() -> None:
    """Apply the global changes to upstream; calling it again changes nothing."""
    quiet_sampling_bars()
    quiet_perceiver_deprecation()
    offline_cangjie_converter()
    register_alignment_attention()
    register_gpt2_small()


# chatterbox-tts 0.1.7: T3 looks its backbone config up by name in LLAMA_CONFIGS, which has the released sizes only.
def derived_backbone(base: str, name: str | None = None, **sizes: int) -> str:
    """The name (`name`, or one made of `base` and `sizes`) of upstream's backbone config `base` with other `sizes`,
    registered where T3 looks its config up; a config already registered under that name is kept."""
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    name = name or f"{base}_" + "_".join(f"{key}{value}" for key, value in sizes.items())
    LLAMA_CONFIGS.setdefault(name, {**copy.deepcopy(LLAMA_CONFIGS[base]), **sizes})
    return name


# chatterbox-tts 0.1.7 knows GPT-2 medium only (Turbo's); upstream's main branch (commit 5de7a54) adds GPT-2 small for
# Nano under the name "GPT2_small": GPT-2 medium's config with 12 layers of width 768 and 12 heads.
def register_gpt2_small() -> str:
    """Register Nano's backbone config under upstream's own name (a later chatterbox that has it keeps its own)."""
    return derived_backbone("GPT2_medium", "GPT2_small", n_layer=12, n_embd=768, hidden_size=768, n_head=12)


# chatterbox-tts 0.1.7: the multilingual `T3.inference` builds an AlignmentStreamAnalyzer whenever the config's
# `is_multilingual` is true (it switches the backbone to eager attention and steers the stop token). Upstream's main
# branch deleted the analyzer with Multilingual V3 (commit 3f35dfc); V3's T3 runs upstream's loop without it.
def without_alignment_analyzer(hp):
    """A copy of the multilingual T3 config `hp` for which upstream's `T3.inference` builds no alignment analyzer
    (`is_multilingual` is read nowhere else in 0.1.7)."""
    unwatched = copy.copy(hp)
    unwatched.__class__ = _unwatched(type(hp))
    return unwatched


@cache
def _unwatched(config_class: type) -> type:
    return type(f"Unwatched{config_class.__name__}", (config_class,), {"is_multilingual": False})


# chatterbox-tts 0.1.7: T3 draws a tqdm bar on every sampling call, noise beside the studio's own progress.
def quiet_sampling_bars() -> None:
    """Upstream draws a progress bar per T3 call; the studio reports progress per chunk instead."""
    import chatterbox.models.t3.t3 as t3_module
    from tqdm import tqdm

    t3_module.tqdm = partial(tqdm, disable=True)


# chatterbox-tts 0.1.7 on torch 2.6: the perceiver enters `torch.backends.cuda.sdp_kernel`, deprecated, on every
# request, which printed a FutureWarning to the console per synthesis.
def quiet_perceiver_deprecation() -> None:
    """Hide torch's deprecation notice for the perceiver's attention context (the call still works as it did)."""
    warnings.filterwarnings("ignore", message=r".*torch\.backends\.cuda\.sdp_kernel\(\) is deprecated",
                            category=FutureWarning)


# chatterbox-tts 0.1.7: the Chinese converter downloads its table and its segmenter's model; the studio loads offline.
def offline_cangjie_converter() -> None:
    """Make upstream's multilingual tokenizer build without a network: its Chinese converter reads Cangjie5_TC.json
    from the checkpoint's folder (upstream asks the hub for it) and goes without the Chinese word segmenter when its
    model cannot be downloaded (as upstream does when the package is missing)."""
    from chatterbox.models.tokenizers import tokenizer as tokenizer_module

    if not getattr(tokenizer_module.ChineseCangjieConverter, "works_offline", False):
        tokenizer_module.ChineseCangjieConverter = _offline_converter_class(tokenizer_module.ChineseCangjieConverter)


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


# chatterbox-tts 0.1.7: the multilingual `T3.inference` leaves three forward hooks behind on every call.
@contextmanager
def hooks_removed_after(module: torch.nn.Module) -> Iterator[None]:
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


# transformers 5.2.0: a backbone attends as `config._attn_implementation` says; the studio's loop borrows it.
@contextmanager
def alignment_watched(config) -> Iterator[None]:
    """Run the backbone whose config is `config` with the attention that shows the alignment heads (registered by
    `install`) inside the block, with its own attention after it."""
    used, config._attn_implementation = config._attn_implementation, WATCHING_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = used


# transformers 5.2.0: attention functions are looked up by name in AttentionInterface; the studio's loop adds one.
def register_alignment_attention() -> None:
    """Register the backbone's SDPA attention that also shows the multilingual T3's alignment heads
    (engine/decoding/alignment.py) under the name `alignment_watched` switches to."""
    from transformers import AttentionInterface

    AttentionInterface.register(WATCHING_ATTENTION, attention_watching_alignment)


# chatterbox-tts 0.1.7: S3Gen makes a chunk's audio in one call of several flow steps (seconds on a CPU), with no
# way to stop it; a request cancelled meanwhile would keep the engine busy to the end of that call. Its flow calls
# `estimator.forward` directly, past any hook, so the check wraps that method for the block.
@contextmanager
def flow_stopping_when(s3gen, cancelled: Callable[[], bool]) -> Iterator[None]:
    """Inside the block, S3Gen's flow raises Cancelled before its next step once `cancelled()` is true."""
    from ..errors import Cancelled

    estimator = s3gen.flow.decoder.estimator
    own = vars(estimator).get("forward")
    step = estimator.forward

    def checked_step(*args, **kwargs):
        if cancelled():
            raise Cancelled("The request was cancelled.")
        return step(*args, **kwargs)

    estimator.forward = checked_step
    try:
        yield
    finally:
        if own is None:
            del estimator.forward
        else:
            estimator.forward = own
