"""Build a Chatterbox checkpoint with random weights, in the released file layout.

Random weights make noise, not speech, but they exercise every line of the real
model code: the tests use a tiny one (two T3 layers) and the benchmark a full-size
one (30 layers, the released architecture), both loaded through `--checkpoint-dir`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path

import numpy as np

CHECKPOINT_FILES = ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json", "conds.pt")
BUILDER_VERSION = 1
# The built-in voice's length: S3Gen prepends it to every call (shorter ones break very short outputs upstream).
BUILTIN_VOICE_SECONDS = 4.0

_SPECIAL_TOKENS = {"[STOP]": 0, "[UNK]": 1, "[SPACE]": 2, "[START]": 255, "[PAD]": 256, "[SEP]": 257, "[CLS]": 258, "[MASK]": 259}
_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-()&%$#@*+=/:;"


def write_tokenizer(path: Path) -> None:
    """A character-level tokenizer.json with Chatterbox's special tokens, ids below 704."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers import AddedToken

    vocab = dict(_SPECIAL_TOKENS)
    next_id = 3
    for ch in _CHARACTERS:
        vocab[ch] = next_id
        next_id += 1
    taken = set(vocab.values())
    vocab.update({f"[unused{i}]": i for i in range(next_id, max(taken)) if i not in taken})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in _SPECIAL_TOKENS])
    tokenizer.save(str(path))


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


def build(directory: Path, t3_layers: int = 2, t3_mlp: int = 1024, seed: int = 0,
          voice_seconds: float = BUILTIN_VOICE_SECONDS) -> Path:
    """Write a random checkpoint into `directory` (created) and return it."""
    import soundfile as sf
    import torch
    from safetensors.torch import save_file
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.tokenizers import EnTokenizer
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts import ChatterboxTTS

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    config_name = f"random_llama_{t3_layers}x{t3_mlp}"
    llama = copy.deepcopy(LLAMA_CONFIGS["Llama_520M"])
    llama.update(num_hidden_layers=t3_layers, intermediate_size=t3_mlp)
    LLAMA_CONFIGS[config_name] = llama
    hp = T3Config.english_only()
    hp.llama_config_name = config_name

    t3, s3gen, ve = T3(hp).eval(), S3Gen().eval(), VoiceEncoder().eval()
    save_file(_contiguous(t3.state_dict()), directory / "t3_cfg.safetensors")
    save_file(_contiguous(s3gen.state_dict()), directory / "s3gen.safetensors")
    save_file(_contiguous(ve.state_dict()), directory / "ve.safetensors")
    write_tokenizer(directory / "tokenizer.json")

    model = ChatterboxTTS(t3, s3gen, ve, EnTokenizer(str(directory / "tokenizer.json")), "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference.wav"
        sf.write(reference, synthetic_voice(voice_seconds), 24000)
        model.prepare_conditionals(str(reference))
    model.conds.save(directory / "conds.pt")
    (directory / "random_checkpoint.json").write_text(
        json.dumps({"builder_version": BUILDER_VERSION, "t3_layers": t3_layers, "t3_mlp": t3_mlp, "seed": seed,
                    "voice_seconds": voice_seconds})
    )
    return directory


def _contiguous(state: dict) -> dict:
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def cached(name: str, **build_args) -> Path:
    """A random checkpoint cached under the user cache directory, built on first use."""
    root = Path(os.environ.get("CHATTERBOX_STUDIO_CACHE", Path.home() / ".cache" / "chatterbox-studio"))
    directory = root / f"{name}-v{BUILDER_VERSION}"
    marker = directory / "random_checkpoint.json"
    if marker.exists() and all((directory / f).exists() for f in CHECKPOINT_FILES):
        return directory
    partial = root / f".{name}-building-{os.getpid()}"
    build(partial, **build_args)
    if directory.exists():
        import shutil
        shutil.rmtree(directory)
    partial.rename(directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--layers", type=int, default=2, help="T3 transformer layers (30 is the released size)")
    parser.add_argument("--mlp", type=int, default=1024, help="T3 MLP width (4096 is the released size)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(args.directory, t3_layers=args.layers, t3_mlp=args.mlp, seed=args.seed))


if __name__ == "__main__":
    main()
