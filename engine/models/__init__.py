"""The Chatterbox variants and the loaded model.

variants: the variants as data (no torch); weights: where their files come from; upstream: every change the studio
makes to upstream's objects; loading: how each architecture loads and what it does its own way; model: the loaded
model the synthesis pipeline calls.
"""

from .loading import LOADERS, accelerated, load, multilingual_tokenizer, resolve_device, turbo_t3_config
from .model import JOINT_VOCODE_TOKENS, SAMPLES_PER_TOKEN, SPEECH_VOCAB, LoadedModel, joint_runs, token_budget
from .variants import LANGUAGES, MODELS, VARIANTS, VariantSpec, variant
from .weights import locate_weights

__all__ = [
    "JOINT_VOCODE_TOKENS", "LANGUAGES", "LOADERS", "LoadedModel", "MODELS", "SAMPLES_PER_TOKEN", "SPEECH_VOCAB",
    "VARIANTS", "VariantSpec", "accelerated", "joint_runs", "load", "locate_weights", "multilingual_tokenizer",
    "resolve_device", "token_budget", "turbo_t3_config", "variant",
]
