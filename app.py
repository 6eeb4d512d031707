"""Chatterbox Studio: the composition root. Reads settings, builds the engine, attaches the UI and API, runs.

    python app.py                 start the studio (UI and API) and open a browser tab
    python app.py synth TEXT      synthesize once from the terminal
    python app.py dataset ...     speak a phrase list in one voice as a Piper training set
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from settings import Settings, add_global_flags, add_server_flags  # noqa: E402

COMMANDS = ("serve", "synth", "dataset")


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
    add_parameter_flags(synth)
    add_global_flags(synth)
    dataset = commands.add_parser("dataset", help="speak a phrase list in one voice as a Piper training set")
    dataset.add_argument("--phrases", type=Path, required=True,
                         help="UTF-8 text, one phrase a line; or a .csv/.tsv with a text column")
    dataset.add_argument("--column", default="text", help="the text column of a CSV or TSV phrase file")
    dataset.add_argument("--voice", required=True, help="a reference clip or a library voice id")
    dataset.add_argument("--out", type=Path, required=True, help="output folder (metadata.csv and wavs/)")
    dataset.add_argument("--language", help="language code for chatterbox-multilingual")
    dataset.add_argument("--sample-rate", type=int, default=22050, help="wav sample rate (Piper uses 22050)")
    dataset.add_argument("--seed", type=int, default=0, help="seed of the first phrase; phrase N uses seed+N")
    dataset.add_argument("--resume", action="store_true", help="keep what the folder already holds and add the rest")
    dataset.add_argument("--server", help="drive a running studio at this URL instead of loading the model here")
    dataset.add_argument("--workers", type=int, default=2, help="concurrent requests with --server")
    dataset.add_argument("--api-key", help="the studio's API key, with --server")
    add_parameter_flags(dataset)
    add_global_flags(dataset)
    return parser


def add_parameter_flags(parser: argparse.ArgumentParser) -> None:
    for name, (low, high, default) in _parameter_ranges().items():
        if name == "speed":
            parser.add_argument("--speed", type=float, default=default, help=f"{low} to {high} (default {default})")
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=float,
                                help=f"{low} to {high} (default: the model's own, {default} for English)")


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
        params = parameters_from(args)
        request = SynthesisRequest(text, voice=voice, model=args.model, language=args.language, seed=args.seed, **params)
        job = engine.submit(request)
        if job.ignored_parameters:
            print(f"note: {args.model} ignores {', '.join(job.ignored_parameters)}", file=sys.stderr)
        chunks = []
        with tqdm(desc="Synthesizing", unit="chunk", file=sys.stderr) as bar:
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


def parameters_from(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in _parameter_ranges()}


def make_dataset(args: argparse.Namespace) -> int:
    """The `dataset` command: a Piper (LJSpeech-style) folder, resumable, with failures recorded."""
    from tqdm import tqdm

    from dataset import DatasetRun, EngineSpeaker, HttpSpeaker, read_phrases
    from engine import EngineError, SynthesisRequest, Voice
    from engine.voices import sanitize_id

    try:
        phrase_list = read_phrases(args.phrases, args.column)
        if args.out.exists() and any(args.out.iterdir()) and not args.resume:
            print(f"error: {args.out} is not empty; add --resume to continue it, or pick a new --out.", file=sys.stderr)
            return 2
        parameters = parameters_from(args)
        SynthesisRequest("check", model=args.model, language=args.language, **parameters)
        request_fields = {**parameters, "model": args.model, **({"language": args.language} if args.language else {})}
        is_clip = Path(args.voice).is_file()
        voice_name = Path(sanitize_id(Path(args.voice).name)).stem
        if args.server:
            if is_clip:
                print("error: with --server, --voice must be a voice id on that server "
                      "(create one with POST /api/create_speaker).", file=sys.stderr)
                return 2
            speaker = HttpSpeaker(args.server, args.voice, request_fields, args.api_key)
        else:
            voice = Voice.from_file(args.voice) if is_clip else Voice(library_id=args.voice)
            speaker = EngineSpeaker(build_engine(Settings.from_args(args)), voice, request_fields)
        run = DatasetRun(args.out, voice_name, args.sample_rate, args.seed)
    except EngineError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    if phrase_list.blank or phrase_list.duplicates:
        print(f"Skipped {phrase_list.blank} blank line(s) and {len(phrase_list.duplicates)} duplicate(s).",
              file=sys.stderr)
    started = time.monotonic()
    with tqdm(total=len(phrase_list.phrases), initial=len(run.done()), desc="Dataset", unit="phrase",
              file=sys.stderr) as bar:
        try:
            summary = run.run(speaker, phrase_list.phrases, args.workers if args.server else 1, bar.update)
        except KeyboardInterrupt:
            print("\nStopped. Finished items are kept; continue with --resume.", file=sys.stderr)
            return 130
    run.describe(summary, model=args.model, language=args.language, parameters=parameters,
                 source=args.server or "in-process", phrases=str(args.phrases), voice_source=args.voice,
                 seconds_taken=round(time.monotonic() - started, 1))
    print(f"{args.out}: {summary['items']} items, {summary['total_audio_seconds']} s of audio "
          f"({summary['new_audio_seconds']} s new), "
          f"{summary['failures']} failure(s)" + (f" (see {args.out / 'failures.csv'})" if summary["failures"] else ""))
    return 1 if summary["failures"] else 0


def exposure_reasons(settings: Settings) -> list[str]:
    """Why the studio is reachable beyond this computer; empty when it is not."""
    reasons = []
    if settings.share:
        reasons.append("--share publishes it on a public gradio.live link")
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        reasons.append(f"it listens on {settings.host}, so other machines on the network can reach it")
    return reasons


def exposure_warning(settings: Settings) -> str | None:
    """A loud notice when the studio is reachable beyond this computer, or None when it is not."""
    reasons = exposure_reasons(settings)
    if not reasons:
        return None
    bar = "!" * 78
    guard = (f"An API key guards it: the UI asks for it as the password, the API as 'Authorization: Bearer <key>'."
             if settings.api_key else
             "Anyone with the address can synthesize speech in any voice, and upload, use or delete saved voices.")
    return (f"{bar}\nWARNING: the studio is exposed: {'; '.join(reasons)}.\n{guard}\n"
            f"Share the address only with people you trust; stop the studio when you are done.\n{bar}")


def with_key(settings: Settings) -> tuple[Settings, bool]:
    """The settings, with a new random API key when the studio is exposed, has none and was not told --open;
    and whether a key was generated."""
    if settings.api_key or settings.open or not exposure_reasons(settings):
        return settings, False
    return replace(settings, api_key=secrets.token_urlsafe(18)), True


def launch_options(settings: Settings) -> dict:
    """Gradio's login (the API key as password) and the folders its file serving may and may not touch."""
    from api.auth import key_matches

    options = {"allowed_paths": [str(settings.data_dir / "datasets")],
               "blocked_paths": [str(settings.data_dir / "voices")]}
    if settings.api_key:
        options["auth"] = lambda _user, password: key_matches(settings.api_key, password)
        options["auth_message"] = "Enter the studio's API key as the password (any user name)."
    return options


def serve(args: argparse.Namespace) -> int:
    """The studio: one server for the browser UI, Gradio's API and the HTTP API."""
    import api
    import ui
    from engine import EngineError

    settings, generated = with_key(Settings.from_args(args))
    try:
        engine = build_engine(settings)
    except EngineError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    demo = ui.build_desk(engine, settings)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=engine.request_batch)
    print(f"Chatterbox Studio on http://{settings.host}:{settings.port}  (API docs at /docs)", flush=True)
    if generated:
        print(f"API key (generated; pass --api-key to choose one, or --open to run without): {settings.api_key}",
              flush=True)
    if warning := exposure_warning(settings):
        print(warning, file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, exit_on_terminate)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        inbrowser=not settings.no_browser,
        app_kwargs=api.app_kwargs(engine, settings),
        show_error=True,
        prevent_thread_lock=True,
        **launch_options(settings),
    )
    demo.block_thread()
    return 0


def exit_on_terminate(signum, frame) -> None:
    """SIGTERM (a service manager, a container or a Space stopping the studio) exits as Ctrl+C does, so the exit
    handlers run and the scratch folder is removed."""
    sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "diffusers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args = parse(sys.argv[1:] if argv is None else argv)
    commands = {"synth": synth, "dataset": make_dataset}
    return commands.get(args.command, serve)(args)


if __name__ == "__main__":
    sys.exit(main())
