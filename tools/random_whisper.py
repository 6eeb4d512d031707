"""Build a Whisper speech recognizer with random weights, in the released file layouts.

Like tools/random_checkpoint.py for the TTS model: random weights transcribe nothing sensible, but they run every
line of the real loading and decoding code. The model comes from transformers' own Whisper classes, its tokenizer is
a small byte-level BPE with Whisper's special tokens at Whisper's own ids, and `faster_whisper_folder` converts it
with CTranslate2's own converter into the folder faster-whisper loads (what `--asr-model DIR` takes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

BUILDER_VERSION = 1
TIMESTAMPS = 1501  # <|0.00|> to <|30.00|>
EOT_ID = 50257  # Whisper's <|endoftext|>: the byte-level vocabulary fills the ids below it
# d_model, layers (encoder and decoder alike), attention heads, MLP width
SIZES = {"tiny-random": (64, 2, 2, 128), "tiny": (384, 4, 6, 1536), "base": (512, 6, 8, 2048)}
_CORPUS = ["the quick brown fox jumps over the lazy dog", "hello there, how are you today?",
           "selamat pagi, apa khabar?", "one two three four five six seven eight nine ten"]


def whisper_languages() -> list[str]:
    """Whisper's language codes in its token order (large-v3's: 100 of them)."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return list(LANGUAGES)


def special_tokens() -> list[str]:
    """Whisper's special tokens in id order, from <|endoftext|> (EOT_ID) to the last timestamp."""
    return ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in whisper_languages()),
            "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
            *(f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMPS))]


def write_tokenizer(directory: Path) -> int:
    """tokenizer.json: a byte-level BPE trained on a few sentences, unused ids up to EOT_ID, then Whisper's special
    tokens at Whisper's ids. Returns the vocabulary size."""
    from tokenizers import AddedToken, ByteLevelBPETokenizer, Tokenizer, decoders, models, pre_tokenizers

    trained = ByteLevelBPETokenizer()
    trained.train_from_iterator(_CORPUS, vocab_size=400, show_progress=False)
    state = json.loads(trained._tokenizer.to_str())["model"]
    vocab = dict(state["vocab"])
    vocab.update({f"<|unused{i}|>": i for i in range(len(vocab), EOT_ID - 1)})
    vocab[""] = EOT_ID - 1  # as in Whisper's multilingual vocabulary, by which CTranslate2 tells it from English's
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in state["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True) for token in special_tokens()])
    tokenizer.save(str(directory / "tokenizer.json"))
    return tokenizer.get_vocab_size()


def build(directory: Path, size: str = "tiny-random", seed: int = 0) -> Path:
    """A random Whisper in transformers' layout (config, weights, tokenizer, feature extractor, generation config)."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab_size = write_tokenizer(directory)
    ids = {token: EOT_ID + i for i, token in enumerate(special_tokens())}
    width, layers, heads, mlp = SIZES[size]
    config = WhisperConfig(vocab_size=vocab_size, d_model=width, encoder_layers=layers, decoder_layers=layers,
                           encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=mlp,
                           decoder_ffn_dim=mlp, num_mel_bins=80, max_source_positions=1500, max_target_positions=448,
                           pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
                           eos_token_id=ids["<|endoftext|>"], decoder_start_token_id=ids["<|startoftranscript|>"])
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"], max_length=448,
        no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in whisper_languages()},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        suppress_tokens=[], begin_suppress_tokens=[ids["<|endoftext|>"]])
    model.save_pretrained(directory)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(directory)
    (directory / "random_whisper.json").write_text(json.dumps({"builder_version": BUILDER_VERSION, "size": size,
                                                                "seed": seed}))
    return directory


def faster_whisper_folder(source: Path, directory: Path, quantization: str | None = None) -> Path:
    """`source` (transformers' layout) converted by CTranslate2's converter into faster-whisper's folder."""
    from ctranslate2.converters import TransformersConverter

    class _Converter(TransformersConverter):
        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            """transformers' Whisper tokenizer wants GPT-2's vocab and merges files; ours is tokenizer.json alone."""
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(model_name_or_path) / "tokenizer.json"),
                                                bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                                unk_token="<|endoftext|>")
            tokenizer.add_special_tokens({"additional_special_tokens": special_tokens()[:-TIMESTAMPS]})
            return tokenizer

    _Converter(str(source), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
        str(directory), quantization=quantization, force=True)
    return directory


def cached(name: str = "tiny-random", size: str = "tiny-random") -> Path:
    """A random Whisper in faster-whisper's layout under the studio's cache folder, built on first use."""
    from engine.config import studio_cache

    directory = studio_cache() / f"whisper-{name}-v{BUILDER_VERSION}"
    if (directory / "model.bin").exists():
        return directory
    partial = directory.parent / f".whisper-{name}-building-{os.getpid()}"
    faster_whisper_folder(build(partial / "transformers", size), partial / "ct2")
    shutil.rmtree(directory, ignore_errors=True)
    (partial / "ct2").rename(directory)
    shutil.rmtree(partial)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where faster-whisper's folder is written")
    parser.add_argument("--size", choices=SIZES, default="tiny-random")
    parser.add_argument("--quantization", help="e.g. int8 (CTranslate2's weight type)")
    args = parser.parse_args()
    source = build(args.directory.with_name(args.directory.name + "-transformers"), args.size)
    print(faster_whisper_folder(source, args.directory, args.quantization))


if __name__ == "__main__":
    main()
