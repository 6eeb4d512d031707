"""Chatterbox Studio: the composition root. Reads settings, builds the engine, attaches the UI and API, runs.

    python app.py                 start the studio (UI and API) and open a browser tab
    python app.py synth TEXT      synthesize once from the terminal
    python app.py dataset ...     speak a phrase list in one voice as a Piper training set
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if os.environ.get("SPACES_ZERO_GPU"):  # on a ZeroGPU Space, `spaces` patches torch: it is imported before torch
    importlib.import_module("spaces")

import cli  # noqa: E402
from settings import Settings, add_global_flags, add_server_flags  # noqa: E402

COMMANDS = ("serve", "synth", "dataset")
NOISY_LOGGERS = ("transformers", "diffusers", "httpx", "huggingface_hub")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py",
                                     description="Chatterbox Studio: local voice-cloning text to speech.")
    commands = parser.add_subparsers(dest="command")
    serve_parser = commands.add_parser("serve",
                                       help="start the studio: browser UI, Gradio API and HTTP API (the default)")
    add_server_flags(serve_parser)
    add_global_flags(serve_parser)
    serve_parser.set_defaults(run=serve)
    cli.add_commands(commands)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; with no subcommand named, `serve`'s."""
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["serve", *argv]
    return build_parser().parse_args(argv)


def serve(args: argparse.Namespace) -> int:
    """The studio: one server for the browser UI, Gradio's API and the HTTP API."""
    import api
    import ui
    from api.exposure import launch_options, with_key
    from engine import EngineError
    from engine.placement import build_placement

    settings, generated_key = with_key(Settings.from_args(args))
    try:
        engine = build_placement(settings.engine, settings.placement)
    except EngineError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    try:
        start_wyoming(engine, settings)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        print(f"error: the Wyoming server cannot listen on {settings.host}:{settings.wyoming_port} ({reason}); "
              f"choose another --wyoming-port.", file=sys.stderr)
        return 2
    demo = ui.build_desk(engine, settings)
    demo.queue(max_size=settings.engine.queue_size, default_concurrency_limit=engine.request_batch)
    announce(settings, generated_key)
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


def start_wyoming(engine, settings: Settings) -> None:
    """With --wyoming, the Wyoming server for Home Assistant, in this process, over the same engine and composer."""
    if not settings.wyoming:
        return
    from api.exposure import LOOPBACK_HOSTS
    from wyoming_server import WyomingServer

    WyomingServer(engine, settings.composer(engine.config, engine.library), settings.host, settings.wyoming_port,
                  announce=settings.host not in LOOPBACK_HOSTS).start()


def announce(settings: Settings, generated_key: bool) -> None:
    """Print the studio's address, the API key if one was generated, and the warning when it is exposed."""
    from api.exposure import exposure_warning

    print(f"Chatterbox Studio on http://{settings.host}:{settings.port}  (API docs at /docs)", flush=True)
    if settings.wyoming:
        print(f"Wyoming server (Home Assistant) on tcp://{settings.host}:{settings.wyoming_port}", flush=True)
    if generated_key:
        print(f"API key (generated; pass --api-key to choose one, or --open to run without): {settings.api_key}",
              flush=True)
    if warning := exposure_warning(settings):
        print(warning, file=sys.stderr, flush=True)


def exit_on_terminate(signum, frame) -> None:
    """SIGTERM (a service manager, a container or a Space stopping the studio) exits as Ctrl+C does, so the exit
    handlers run and the scratch folder is removed."""
    sys.exit(0)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse(sys.argv[1:] if argv is None else argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
