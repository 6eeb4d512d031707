"""Chatterbox Studio: the composition root. Reads settings, builds the engine, attaches the UI and API, runs.

    python app.py                 start the studio (UI and API) and open a browser tab
    python app.py synth TEXT      synthesize once from the terminal
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # upstream prints a bar per model call; the studio shows its own
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from settings import Settings, add_global_flags, add_server_flags  # noqa: E402

COMMANDS = ("serve", "synth")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="Chatterbox Studio: local voice-cloning text to speech.")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the studio: browser UI, Gradio API and HTTP API (the default)")
    add_server_flags(serve)
    add_global_flags(serve)
    synth = commands.add_parser("synth", help="synthesize text to an audio file")
    synth.add_argument("text", help="what to say ('-' reads standard input)")
    synth.add_argument("--voice", help="a reference clip (any common audio format) or a library voice id")
    synth.add_argument("-o", "--output", default="out.wav", help="output file; its extension picks the format "
                       "(wav, mp3, flac, opus, aac, pcm)")
    synth.add_argument("--seed", type=int, help="same seed and inputs give identical audio")
    synth.add_argument("--language", help="language code for chatterbox-multilingual (en, fr, ms, zh, ...)")
    for name, (low, high, default) in _parameter_ranges().items():
        synth.add_argument(f"--{name.replace('_', '-')}", type=float, default=default,
                           help=f"{low} to {high} (default {default})")
    add_global_flags(synth)
    return parser


def _parameter_ranges():
    from engine import PARAMETER_RANGES

    return PARAMETER_RANGES


def parse(argv: list[str]) -> argparse.Namespace:
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["serve", *argv]
    return build_parser().parse_args(argv)


def build_engine(settings: Settings):
    from engine import Engine

    return Engine(settings.engine_config())


def synth(args: argparse.Namespace) -> int:
    """The `synth` command: one request, a progress bar over chunks, a file in the format its name asks for."""
    from tqdm import tqdm

    from engine import EngineError, SynthesisRequest, Voice, audio

    settings = Settings.from_args(args)
    text = sys.stdin.read() if args.text == "-" else args.text
    try:
        fmt = audio.format_for_path(args.output)
        engine = build_engine(settings)
        voice = Voice.builtin()
        if args.voice:
            voice = Voice.from_file(args.voice) if Path(args.voice).is_file() else Voice(library_id=args.voice)
        params = {name: getattr(args, name) for name in _parameter_ranges()}
        request = SynthesisRequest(text, voice=voice, model=args.model, language=args.language, seed=args.seed, **params)
        job = engine.submit(request)
        if job.ignored_parameters:
            print(f"note: {args.model} ignores {', '.join(job.ignored_parameters)}", file=sys.stderr)
        chunks = []
        with tqdm(desc="Synthesizing", unit="chunk", disable=False, file=sys.stderr) as bar:
            for chunk in job:
                bar.total = chunk.total
                bar.set_postfix_str(f"{sum(c.duration for c in chunks) + chunk.duration:.1f} s of audio")
                bar.update(1)
                chunks.append(chunk)
        clip = audio.join(chunks)
        Path(args.output).write_bytes(audio.encode(clip.samples, clip.sample_rate, fmt))
    except EngineError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    print(f"Wrote {args.output}: {clip.duration:.2f} s, {len(chunks)} chunk(s), seed {job.seed}")
    return 0


def exposure_warning(settings: Settings) -> str | None:
    """A loud notice when the studio is reachable beyond this computer, or None when it is not."""
    reasons = []
    if settings.share:
        reasons.append("--share publishes it on a public gradio.live link")
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        reasons.append(f"it listens on {settings.host}, so other machines on the network can reach it")
    if not reasons:
        return None
    bar = "!" * 78
    return (f"{bar}\nWARNING: the studio is exposed: {'; '.join(reasons)}.\n"
            "Anyone with the address can synthesize speech in any voice, and upload, use or delete saved voices.\n"
            f"Share the address only with people you trust; stop the studio when you are done.\n{bar}")


def serve(args: argparse.Namespace) -> int:
    """The studio: one server for the browser UI, Gradio's API and the HTTP API."""
    import api
    import ui
    from engine import EngineError

    settings = Settings.from_args(args)
    try:
        engine = build_engine(settings)
    except EngineError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    demo = ui.build_desk(engine, settings)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    print(f"Chatterbox Studio on http://{settings.host}:{settings.port}  (API docs at /docs)", flush=True)
    if warning := exposure_warning(settings):
        print(warning, file=sys.stderr, flush=True)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        inbrowser=not settings.no_browser,
        app_kwargs=api.app_kwargs(engine, settings),
        show_error=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "diffusers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args = parse(sys.argv[1:] if argv is None else argv)
    return synth(args) if args.command == "synth" else serve(args)


if __name__ == "__main__":
    sys.exit(main())
