"""Time upstream `ChatterboxTTS.generate` and the studio engine on the same checkpoint, seed and token counts.

    ./launch.sh bench [--quick] [--device cpu|cuda] [--tokens N] [--concurrency N] [--batch-requests N] [--chunks N]
                       [--model NAME]

The checkpoint has the released architecture at full size with random weights and a 10 s built-in voice (built
and cached on first use), so the compute per token is that of the real model. Random weights never stop by themselves, so every run
generates exactly the asked number of speech tokens. Each side runs in its own process, so peak memory is its own.
With --chunks N the text is N sentences: upstream's `generate` takes them one by one, as a script looping over
sentences would, and the studio takes them as one request of N chunks (the silence it puts between chunks is not
counted as audio). --model times another variant against upstream's own class for it, built from the checkpoint's
parts as upstream builds it (multilingual models speak English on both sides). Multilingual V3 and Nano come from
upstream's main branch, not 0.1.7: the upstream side is 0.1.7's class set up as main sets it up (V3: no alignment
analyzer, repetition penalty 1.2, the last token's audio not counted; Nano: Turbo's class with GPT-2 small).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back home again before dark."
SEED = 42
TOKENS_PER_SECOND = 25


def variant(model: str):
    """The variant `model` as the studio knows it."""
    from engine.models import VARIANTS

    return VARIANTS[model]


def released_backbone(model: str) -> dict:
    """The variant's T3 backbone config as released (upstream's, or main's GPT-2 small for Nano)."""
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    from engine.models.upstream import register_gpt2_small

    register_gpt2_small()
    return LLAMA_CONFIGS[variant(model).backbone_config]


def full_size_checkpoint(model: str) -> Path:
    """The released architecture with random weights: T3 at its released depth (a GPT-2 keeps its own MLP width)."""
    sys.path.insert(0, str(ROOT))
    from tools import random_checkpoint

    backbone = released_backbone(model)
    layers = backbone.get("n_layer") or backbone["num_hidden_layers"]
    return random_checkpoint.cached(f"full-size-random-{model}", variant=model, t3_layers=layers,
                                    t3_mlp=backbone.get("intermediate_size", 4096), voice_seconds=10.0)


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated, or this process's own peak resident set (which, unlike ru_maxrss, does not
    carry over the parent's peak across exec)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def timed(owner, method: str, timings: dict, key: str) -> None:
    """Add the time every call of `owner.method` takes to timings[key]."""
    original = getattr(owner, method)

    def measured(*args, **kwargs):
        started = time.perf_counter()
        out = original(*args, **kwargs)
        timings[key] += time.perf_counter() - started
        return out

    setattr(owner, method, measured)


def capped_t3(t3, tokens: int, turbo: bool) -> str:
    """Make upstream's T3 stop after `tokens` speech tokens, as the studio's request asks it to; the method's name
    (Turbo's `generate` calls `inference_turbo`)."""
    method, limit, cap = ("inference_turbo", "max_gen_len", tokens - 1) if turbo else ("inference", "max_new_tokens", tokens)
    original = getattr(t3, method)

    def capped(*args, **kwargs):
        return original(*args, **{**kwargs, limit: min(kwargs.get(limit, 1000), cap)})

    setattr(t3, method, capped)
    return method


def speech_only(s3gen) -> None:
    """Drop the control tokens random weights sample before upstream's S3Gen sees them, as upstream's English and
    Turbo `generate` and the studio do (there it changes nothing); upstream's multilingual `generate` passes them on
    and S3Gen cannot embed them."""
    original = s3gen.inference

    def inference(*args, speech_tokens, **kwargs):
        return original(*args, speech_tokens=speech_tokens[speech_tokens < 6561], **kwargs)

    s3gen.inference = inference


def upstream_model(model: str, checkpoint: Path, device: str):
    """Upstream's own class for the variant, built from the checkpoint's parts as upstream's `from_local` builds it
    (main's for V3 and Nano, which 0.1.7's `from_local` cannot load), with none of the studio's acceleration."""
    from engine.models import LOADERS
    from engine.models.upstream import register_gpt2_small

    spec = variant(model)
    register_gpt2_small()
    return LOADERS[spec.architecture].build(spec, checkpoint, device)


def run_upstream(model_name: str, checkpoint: Path, device: str, tokens: int, runs: int, chunks: int) -> dict:
    import torch

    from engine.models import SAMPLES_PER_TOKEN

    spec = variant(model_name)
    model = upstream_model(model_name, checkpoint, device)
    language = {"language_id": "en"} if spec.takes_language_id else {}
    arguments = {**language, **dict(spec.defaults)}  # V3's repetition penalty is main's default, not 0.1.7's
    cut = SAMPLES_PER_TOKEN if spec.trims_last_token else 0  # main cuts the last token's audio (not timed: a slice)
    timings = {"t3": 0.0, "s3gen": 0.0}
    speech_only(model.s3gen)
    timed(model.t3, capped_t3(model.t3, tokens, spec.architecture == "turbo"), timings, "t3")
    timed(model.s3gen, "inference", timings, "s3gen")
    torch.manual_seed(SEED)
    model.generate(TEXT, **arguments)  # warm-up
    timings.update(t3=0.0, s3gen=0.0)
    started = time.perf_counter()
    seconds = 0.0
    for _ in range(runs):
        for sentence in range(chunks):
            torch.manual_seed(SEED + sentence)
            seconds += (model.generate(TEXT, **arguments).shape[-1] - cut) / model.sr
    wall = time.perf_counter() - started
    return {"wall": wall, "audio": seconds, "t3": timings["t3"], "s3gen": timings["s3gen"],
            "tokens": tokens * runs * chunks, "first_audio": wall / runs / chunks, "peak_mb": peak_memory_mb(device)}


def run_studio(model_name: str, checkpoint: Path, device: str, tokens: int, runs: int, chunks: int,
               concurrency: int, precision: str, batch_requests: int | None) -> dict:
    import threading

    from engine import Engine, EngineConfig, SynthesisRequest
    from engine.text import split

    engine = Engine(EngineConfig(device=device, model=model_name, checkpoint_dir=checkpoint,
                                 data_dir=Path("/tmp/bench-data"), queue_size=max(16, concurrency), precision=precision,
                                 batch_requests=batch_requests))
    timings = {"t3": 0.0, "s3gen": 0.0}
    with engine.using_model() as model:
        timed(model, "speech_tokens", timings, "t3")
        timed(model.upstream.s3gen, "inference", timings, "s3gen")
    text = "\n\n".join([TEXT] * chunks)  # one chunk per paragraph
    pauses = sum(chunk.pause_after for chunk in split(text, engine.config.chunk_chars))
    language = "en" if variant(model_name).takes_language_id else None
    request = SynthesisRequest(text, seed=SEED, language=language, max_tokens_per_chunk=tokens)
    engine.synthesize(request)  # warm-up
    timings.update(t3=0.0, s3gen=0.0)
    started = time.perf_counter()
    seconds, first_audio = 0.0, []
    for _ in range(runs):
        asked = time.perf_counter()
        for i, chunk in enumerate(engine.submit(request)):
            if i == 0:
                first_audio.append(time.perf_counter() - asked)
            seconds += chunk.duration
        seconds -= pauses
    wall = time.perf_counter() - started
    result = {"wall": wall, "audio": seconds, "t3": timings["t3"], "s3gen": timings["s3gen"],
              "tokens": tokens * runs * chunks,
              "first_audio": sum(first_audio) / runs, "peak_mb": peak_memory_mb(device)}
    if concurrency > 1:
        clips = []
        threads = [threading.Thread(target=lambda: clips.append(engine.synthesize(request))) for _ in range(concurrency)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result["concurrent_rtf"] = sum(c.duration - pauses for c in clips) / (time.perf_counter() - started)
    engine.close()
    return result


def measure_in_subprocess(side: str, args: argparse.Namespace, checkpoint: Path) -> dict:
    command = [sys.executable, "-m", "bench", "--side", side, "--model", args.model, "--checkpoint", str(checkpoint),
               "--device", args.device,
               "--tokens", str(args.tokens), "--runs", str(args.runs), "--chunks", str(args.chunks),
               "--concurrency", str(args.concurrency), "--precision", args.precision]
    if args.batch_requests:
        command += ["--batch-requests", str(args.batch_requests)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{side} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(upstream: dict, studio: dict, args: argparse.Namespace) -> str:
    def rows(result):
        return {
            "T3 tokens/s": result["tokens"] / result["t3"],
            "S3Gen real-time factor (audio s / compute s)": result["audio"] / result["s3gen"],
            "end-to-end real-time factor": result["audio"] / result["wall"],
            "time to first audio (s)": result["first_audio"],
            "peak memory (MB)": result["peak_mb"],
        }

    ours, theirs = rows(studio), rows(upstream)
    lines = ["| measure | upstream | studio | studio/upstream |", "|---|---|---|---|"]
    for name in ours:
        lower_is_better = name.startswith(("time", "peak"))
        ratio = theirs[name] / ours[name] if lower_is_better else ours[name] / theirs[name]
        lines.append(f"| {name} | {theirs[name]:.3f} | {ours[name]:.3f} | {ratio:.2f}x |")
    if "concurrent_rtf" in studio:
        lines.append(f"| {args.concurrency} concurrent requests, aggregate real-time factor | "
                     f"{theirs['end-to-end real-time factor']:.3f} (serial) | {studio['concurrent_rtf']:.3f} | "
                     f"{studio['concurrent_rtf'] / theirs['end-to-end real-time factor']:.2f}x |")
    speedup = upstream["wall"] / upstream["audio"] / (studio["wall"] / studio["audio"])
    lines.append("")
    lines.append(f"end-to-end speedup vs upstream: {speedup:.2f}x")
    return "\n".join(lines)


def hardware(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} CPU"


def cpu_model() -> str:
    """The CPU's name and its widest vector instructions, which decide how fast int8 and bfloat16 run."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    vector = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name} ({', '.join(vector) or 'no AVX2'})"


def main() -> None:
    from engine import MODELS, PRECISIONS

    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few tokens and one run: a few minutes on 2 CPU cores")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, help="speech tokens per generation (default 50 quick, 250 full)")
    parser.add_argument("--runs", type=int, help="timed generations per side (default 1 quick, 3 full)")
    parser.add_argument("--chunks", type=int, default=1, help="sentences in the text, one chunk each (default 1)")
    parser.add_argument("--concurrency", type=int, help="concurrent studio requests (default 1 quick, 16 full)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fast", help="the studio's precision")
    parser.add_argument("--batch-requests", type=int,
                        help="most requests the studio samples together (default: its own, 16 on CUDA, 1 on CPU)")
    parser.add_argument("--model", choices=MODELS, default="chatterbox", help="the variant to time")
    parser.add_argument("--side", choices=["upstream", "studio"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    args.tokens = args.tokens or (50 if args.quick else 250)
    args.runs = args.runs or (1 if args.quick else 3)
    args.concurrency = args.concurrency or (1 if args.quick else 16)
    if args.side:
        sys.path.insert(0, str(ROOT))
        run = run_upstream if args.side == "upstream" else run_studio
        extra = () if args.side == "upstream" else (args.concurrency, args.precision, args.batch_requests)
        print(json.dumps(run(args.model, args.checkpoint, args.device, args.tokens, args.runs, args.chunks, *extra)))
        return
    checkpoint = full_size_checkpoint(args.model)
    print(f"Checkpoint: {checkpoint} ({args.model}, released architecture, random weights); {args.tokens} tokens x "
          f"{args.chunks} chunk(s) x {args.runs} run(s); studio precision {args.precision}")
    upstream = measure_in_subprocess("upstream", args, checkpoint)
    studio = measure_in_subprocess("studio", args, checkpoint)
    table = report(upstream, studio, args)
    print(table)
    if not args.no_record:
        command = "./launch.sh bench " + " ".join(sys.argv[1:])
        stamp = datetime.date.today().isoformat()
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as results:
            results.write(f"\n## {stamp}: {hardware(args.device)}\n\nCommand: `{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
