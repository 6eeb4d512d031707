"""faster-whisper (CTranslate2) against transformers' Whisper, on this machine's CPU, in one run.

Both run the same random Whisper of a released size (tools/random_whisper.py; the hub is out of reach here): the
same weights, once as transformers holds them and once converted by CTranslate2's converter (int8, as the studio
loads it on a CPU). Each transcribes the same seconds of a voice-like signal, greedily, made to decode exactly
`--tokens` tokens (random weights would otherwise stop anywhere), which is about what a clip of that length says.
Both are timed in the same process, one after the other, so a busy machine slows both alike and the ratio holds.
It also times what every dataset clip gets besides: Silero VAD trimming and EBU R128 loudness, on the same clip.

    .venv/bin/python -m bench.recognizers --size base --seconds 5 --tokens 30
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(run, repeats: int) -> float:
    """The median seconds of `repeats` calls of `run`, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    import ctranslate2
    import torch
    from faster_whisper.feature_extractor import FeatureExtractor
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    from tools import random_checkpoint, random_whisper

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=random_whisper.SIZES, default="base")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clip = random_checkpoint.synthetic_voice(args.seconds, sample_rate=16000, seed=3)
    ids = {token: random_whisper.EOT_ID + i for i, token in enumerate(random_whisper.special_tokens())}
    prompt = [ids[token] for token in ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")]
    with tempfile.TemporaryDirectory() as tmp:
        source = random_whisper.build(Path(tmp) / "transformers", args.size)
        converted = random_whisper.faster_whisper_folder(source, Path(tmp) / "ct2", "int8")
        hf_model = WhisperForConditionalGeneration.from_pretrained(source).eval()
        hf_features = WhisperFeatureExtractor.from_pretrained(source)
        ct2_model = ctranslate2.models.Whisper(str(converted), device="cpu", compute_type="int8",
                                               intra_threads=args.threads)
        ct2_features = FeatureExtractor(feature_size=80)

        def with_transformers() -> None:
            features = hf_features(clip, sampling_rate=16000, return_tensors="pt").input_features
            with torch.inference_mode():
                out = hf_model.generate(features, language="en", task="transcribe", max_new_tokens=args.tokens,
                                        min_new_tokens=args.tokens, do_sample=False, num_beams=1)
            assert out.shape[-1] >= args.tokens

        def with_ctranslate2() -> None:
            mel = ct2_features(clip)[:, :3000]
            mel = np.pad(mel, ((0, 0), (0, 3000 - mel.shape[1])))
            features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
            ct2_model.generate(features, [prompt], beam_size=1, max_length=len(prompt) + args.tokens,  # counts the prompt
                               suppress_tokens=[random_whisper.EOT_ID], suppress_blank=False)

        hf_seconds = timed(with_transformers, args.repeats)
        ct2_seconds = timed(with_ctranslate2, args.repeats)
    from engine.quality import normalize_loudness, trim_non_speech

    at_22k = random_checkpoint.synthetic_voice(args.seconds, sample_rate=22050, seed=3)
    vad_seconds = timed(lambda: trim_non_speech(at_22k, 22050), args.repeats)
    loudness_seconds = timed(lambda: normalize_loudness(at_22k, 22050, -23.0), args.repeats)
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, Whisper {args.size} (random "
          f"weights), {args.seconds:g} s of audio, {args.tokens} tokens, median of {args.repeats}:")
    print(f"  transformers {hf_seconds:.2f} s   faster-whisper (int8) {ct2_seconds:.2f} s   "
          f"ratio {hf_seconds / ct2_seconds:.1f}x")
    print(f"  Silero VAD trim {vad_seconds:.3f} s   loudness {loudness_seconds:.3f} s")


if __name__ == "__main__":
    main()
