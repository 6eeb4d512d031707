"""Build a Chatterbox checkpoint with random weights, in the released file layout.

Random weights make noise, not speech, but they exercise every line of the real
model code: the tests use a tiny one (two T3 layers) and the benchmark a full-size
one (30 layers, the released architecture), both loaded through `--checkpoint-dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

BUILDER_VERSION = 2
# The built-in voice's length: S3Gen prepends it to every call (shorter ones break very short outputs upstream).
BUILTIN_VOICE_SECONDS = 4.0

_SPECIAL_TOKENS = {"[STOP]": 0, "[UNK]": 1, "[SPACE]": 2, "[START]": 255, "[PAD]": 256, "[SEP]": 257, "[CLS]": 258, "[MASK]": 259}
_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-()&%$#@*+=/:;"
_ACCENTS = "\u0300\u0301\u0302\u0303\u0308\u030a\u0327"  # what NFKD leaves of é, è, ê, ñ, ü, å, ç


def write_tokenizer(path: Path, language_tags: tuple[str, ...] = ()) -> None:
    """A character-level tokenizer.json with Chatterbox's special tokens (and language tags such as `[fr]`, for the
    multilingual model), ids below 704."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    special = {**_SPECIAL_TOKENS, **{f"[{tag}]": 260 + i for i, tag in enumerate(language_tags)}}
    vocab = dict(special)
    next_id = 3
    for ch in _CHARACTERS + _ACCENTS:
        while next_id in vocab.values():
            next_id += 1
        vocab[ch] = next_id
        next_id += 1
    taken = set(vocab.values())
    vocab.update({f"[unused{i}]": i for i in range(3, max(taken)) if i not in taken})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in special])
    tokenizer.save(str(path))


def write_gpt2_tokenizer(directory: Path) -> None:
    """A small byte-level BPE tokenizer in GPT-2's file layout, as Turbo's AutoTokenizer loads it."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([_CHARACTERS, "the quick brown fox jumps over the lazy dog"], vocab_size=300,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    bpe.save_model(str(directory))
    bpe.save(str(directory / "tokenizer.json"))
    tokenizer = GPT2TokenizerFast(tokenizer_file=str(directory / "tokenizer.json"),
                                  vocab_file=str(directory / "vocab.json"), merges_file=str(directory / "merges.txt"))
    tokenizer.save_pretrained(str(directory))
    for name, content in (("added_tokens.json", {}), ("special_tokens_map.json", tokenizer.special_tokens_map)):
        if not (directory / name).exists():  # the released layout has them; newer transformers no longer writes them
            (directory / name).write_text(json.dumps(content), encoding="utf-8")


def synthetic_voice(seconds: float = 4.0, sample_rate: int = 24000, seed: int = 0) -> np.ndarray:
    """A voice-like test signal: a gliding harmonic tone with syllable-rate amplitude."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 140 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) ** 2
    wave = tone * syllables + 0.02 * rng.standard_normal(t.size)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def build(directory: Path, variant: str = "chatterbox", t3_layers: int = 2, t3_mlp: int = 1024, seed: int = 0,
          voice_seconds: float = BUILTIN_VOICE_SECONDS) -> Path:
    """Write a random checkpoint of `variant` into `directory` (created) and return it. `t3_mlp` is the Llama
    MLP width; a GPT-2 backbone (Turbo's, Nano's) keeps its own (four times its width)."""
    import soundfile as sf
    import torch

    from engine.models import VARIANTS
    from engine.models.upstream import install

    install()  # registers the backbone configs upstream's main branch added (Nano's)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    spec = VARIANTS[variant]
    model = _BUILDERS[spec.architecture](directory, spec, t3_layers, t3_mlp)
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference.wav"
        sf.write(reference, synthetic_voice(voice_seconds), 24000)
        model.prepare_conditionals(str(reference))
    model.conds.save(directory / "conds.pt")
    (directory / "random_checkpoint.json").write_text(
        json.dumps({"builder_version": BUILDER_VERSION, "variant": variant, "t3_layers": t3_layers, "t3_mlp": t3_mlp,
                    "seed": seed, "voice_seconds": voice_seconds})
    )
    return directory


def _english(directory: Path, spec, t3_layers: int, t3_mlp: int):
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.tokenizers import EnTokenizer
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts import ChatterboxTTS

    from engine.models.upstream import derived_backbone

    hp = T3Config.english_only()
    hp.llama_config_name = derived_backbone(spec.backbone_config, num_hidden_layers=t3_layers,
                                            intermediate_size=t3_mlp)
    t3, s3gen, ve = T3(hp).eval(), S3Gen().eval(), VoiceEncoder().eval()
    _save_parts(directory, spec, t3, s3gen, ve)
    write_tokenizer(directory / "tokenizer.json")
    return ChatterboxTTS(t3, s3gen, ve, EnTokenizer(str(directory / "tokenizer.json")), "cpu")


def _multilingual(directory: Path, spec, t3_layers: int, t3_mlp: int):
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.mtl_tts import SUPPORTED_LANGUAGES, ChatterboxMultilingualTTS

    from engine.models import multilingual_tokenizer
    from engine.models.upstream import derived_backbone

    hp = T3Config.multilingual()
    hp.llama_config_name = derived_backbone(spec.backbone_config, num_hidden_layers=t3_layers,
                                            intermediate_size=t3_mlp)
    t3, s3gen, ve = T3(hp).eval(), S3Gen().eval(), VoiceEncoder().eval()
    _save_parts(directory, spec, t3, s3gen, ve)
    write_tokenizer(directory / "grapheme_mtl_merged_expanded_v1.json", tuple(SUPPORTED_LANGUAGES))
    (directory / "Cangjie5_TC.json").write_text(json.dumps(["日\ta", "月\tb"]), encoding="utf-8")
    return ChatterboxMultilingualTTS(t3, s3gen, ve, multilingual_tokenizer(directory), "cpu")


def _turbo(directory: Path, spec, t3_layers: int, t3_mlp: int):
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts_turbo import ChatterboxTurboTTS
    from transformers import AutoTokenizer

    from engine.models import turbo_t3_config
    from engine.models.upstream import derived_backbone

    hp = turbo_t3_config(derived_backbone(spec.backbone_config, n_layer=t3_layers))
    t3, s3gen, ve = T3(hp).eval(), S3Gen(meanflow=True).eval(), VoiceEncoder().eval()
    _save_parts(directory, spec, t3, s3gen, ve)
    write_gpt2_tokenizer(directory)
    del t3.tfmr.wte
    return ChatterboxTurboTTS(t3, s3gen, ve, AutoTokenizer.from_pretrained(directory), "cpu")


_BUILDERS = {"english": _english, "multilingual": _multilingual, "turbo": _turbo}  # by the variant's architecture


def _save_parts(directory: Path, spec, t3, s3gen, ve) -> None:
    """T3, S3Gen and the voice encoder under the variant's file names, each in the format its suffix names."""
    for file, part in ((spec.t3_file, t3), (spec.s3gen_file, s3gen), (spec.voice_encoder_file, ve)):
        _save_state(_contiguous(part.state_dict()), directory / file)


def _save_state(state: dict, path: Path) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        import torch

        torch.save(state, path)


def _contiguous(state: dict) -> dict:
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def cached(name: str, **build_args) -> Path:
    """A random checkpoint cached under the user cache directory, built on first use."""
    from engine.config import studio_cache
    from engine.models import VARIANTS

    directory = studio_cache() / f"{name}-v{BUILDER_VERSION}"
    marker = directory / "random_checkpoint.json"
    files = VARIANTS[build_args.get("variant", "chatterbox")].files
    if marker.exists() and all((directory / f).exists() for f in files):
        return directory
    partial = directory.parent / f".{name}-building-{os.getpid()}"
    build(partial, **build_args)
    if directory.exists():
        import shutil
        shutil.rmtree(directory)
    partial.rename(directory)
    return directory


def main() -> None:
    from engine.models import MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--variant", choices=MODELS, default="chatterbox")
    parser.add_argument("--layers", type=int, default=2, help="T3 transformer layers (30 is the released size)")
    parser.add_argument("--mlp", type=int, default=1024, help="T3 MLP width (4096 is the released size)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(args.directory, args.variant, t3_layers=args.layers, t3_mlp=args.mlp, seed=args.seed))


if __name__ == "__main__":
    main()
