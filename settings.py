"""The studio's one settings object, read from command-line flags and CHATTERBOX_* environment variables."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path

from engine import MODELS, PRECISIONS, EngineConfig

ENV_PREFIX = "CHATTERBOX_"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5093
    share: bool = False
    no_browser: bool = False
    device: str = "auto"
    model: str = "chatterbox"
    precision: str = "fast"
    flow_steps: int | None = None
    batch_requests: int | None = None
    checkpoint_dir: Path | None = None
    data_dir: Path = Path("data")
    queue_size: int = 16
    max_chunk_tokens: int = 1000
    max_input_chars: int = 4096
    api_key: str | None = None
    speed_as_cfg: bool = False
    voice_aliases: tuple[tuple[str, str], ...] = ()
    max_upload_mb: int = 20
    temporary_voice_seconds: int = 3600
    presets_dir: Path = Path(__file__).resolve().parent / "presets"
    idle_unload_seconds: float = 0.0
    rate_limit: int = 0
    cors_origins: tuple[str, ...] = ()
    open: bool = False

    def __post_init__(self):
        object.__setattr__(self, "voice_aliases", tuple(tuple(pair) for pair in self.voice_aliases))
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))

    @property
    def aliases(self) -> dict[str, str]:
        """OpenAI voice names (alloy, nova, ...) the user mapped to library voice ids."""
        return dict(self.voice_aliases)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(device=self.device, model=self.model, checkpoint_dir=self.checkpoint_dir,
                            data_dir=self.data_dir, queue_size=self.queue_size, max_chunk_tokens=self.max_chunk_tokens,
                            idle_unload_seconds=self.idle_unload_seconds, precision=self.precision,
                            flow_steps=self.flow_steps, batch_requests=self.batch_requests)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_alias(text: str) -> tuple[str, str]:
    """`alloy=anwar.wav` as ('alloy', 'anwar.wav')."""
    name, sep, voice_id = text.partition("=")
    if not sep or not name.strip() or not voice_id.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=VOICE_ID (for example alloy=anwar.wav)")
    return name.strip().lower(), voice_id.strip()


def _whole_number(what: str, most: int):
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not 1 <= int(text) <= most:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of {what} from 1 to {most}")
        return int(text)

    return parse


flow_steps = _whole_number("flow steps", 50)
batch_requests = _whole_number("requests", 64)


def _env_origins() -> list[str]:
    return [origin.strip() for origin in os.environ.get(env_name("cors_origins"), "").split(",") if origin.strip()]


def _env_aliases() -> list[tuple[str, str]]:
    raw = os.environ.get(env_name("voice_aliases"), "")
    return [parse_alias(item) for item in raw.split(",") if item.strip()]


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    """Flags every subcommand takes: where the model runs and where its weights come from."""
    defaults = Settings()
    parser.add_argument("--device", default=os.environ.get(env_name("device"), defaults.device),
                        help="auto (cuda, then mps, then cpu), cuda, cuda:N, mps or cpu [CHATTERBOX_DEVICE]")
    parser.add_argument("--model", choices=MODELS, default=os.environ.get(env_name("model"), defaults.model),
                        help="model variant [CHATTERBOX_MODEL]")
    parser.add_argument("--precision", choices=PRECISIONS,
                        default=os.environ.get(env_name("precision"), defaults.precision),
                        help="fast: int8 T3 on CPU, bfloat16 flow where native, 5 flow steps; exact: computed as "
                             "upstream computes, same output for the same seed [CHATTERBOX_PRECISION]")
    parser.add_argument("--flow-steps", type=flow_steps, default=os.environ.get(env_name("flow_steps")) or None,
                        help="S3Gen flow-matching steps, 1 to 50 (default: 5 fast, 10 exact; more is slower and "
                             "smoother) [CHATTERBOX_FLOW_STEPS]")
    parser.add_argument("--batch-requests", type=batch_requests,
                        default=os.environ.get(env_name("batch_requests")) or None,
                        help="most requests whose next chunks T3 samples together, 1 to 64 (default: 16 on a CUDA "
                             "GPU in the fast precision, else 1) [CHATTERBOX_BATCH_REQUESTS]")
    parser.add_argument("--checkpoint-dir", type=Path, default=os.environ.get(env_name("checkpoint_dir")) or None,
                        help="load weights from this folder (Chatterbox's file layout) instead of the Hugging Face "
                             "hub [CHATTERBOX_CHECKPOINT_DIR]")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(env_name("data_dir"), defaults.data_dir)),
                        help="where saved voices and outputs live [CHATTERBOX_DATA_DIR]")
    parser.add_argument("--max-chunk-tokens", type=int,
                        default=int(os.environ.get(env_name("max_chunk_tokens"), defaults.max_chunk_tokens)),
                        help="most speech tokens per text chunk, 25 per second of audio (1 to 1000) "
                             "[CHATTERBOX_MAX_CHUNK_TOKENS]")


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    if os.environ.get("SPACE_ID"):  # a Hugging Face Space serves the app on 0.0.0.0:7860
        defaults = Settings(host="0.0.0.0", port=7860, no_browser=True)
    parser.add_argument("--host", default=os.environ.get(env_name("host"), defaults.host),
                        help="address to listen on [CHATTERBOX_HOST]")
    parser.add_argument("--port", type=int, default=int(os.environ.get(env_name("port"), defaults.port)),
                        help="port to listen on [CHATTERBOX_PORT]")
    parser.add_argument("--share", action="store_true", default=_env_bool(env_name("share")),
                        help="also serve through a public gradio.live link [CHATTERBOX_SHARE]")
    parser.add_argument("--no-browser", action="store_true",
                        default=_env_bool(env_name("no_browser")) or defaults.no_browser,
                        help="do not open a browser tab [CHATTERBOX_NO_BROWSER]")
    parser.add_argument("--queue-size", type=int, default=int(os.environ.get(env_name("queue_size"), defaults.queue_size)),
                        help="requests that may wait before new ones get a 'busy' answer [CHATTERBOX_QUEUE_SIZE]")
    parser.add_argument("--max-input-chars", type=int,
                        default=int(os.environ.get(env_name("max_input_chars"), defaults.max_input_chars)),
                        help="longest text one request may send [CHATTERBOX_MAX_INPUT_CHARS]")
    parser.add_argument("--presets-dir", type=Path,
                        default=Path(os.environ.get(env_name("presets_dir"), defaults.presets_dir)),
                        help="folder of preset JSON files [CHATTERBOX_PRESETS_DIR]")
    parser.add_argument("--api-key", default=os.environ.get(env_name("api_key")) or None,
                        help="require this Bearer token on the HTTP API; off when unset [CHATTERBOX_API_KEY]")
    parser.add_argument("--speed-as-cfg", action="store_true", default=_env_bool(env_name("speed_as_cfg")),
                        help="take the OpenAI `speed` field as cfg_weight, as pyVideoTrans sends it "
                             "[CHATTERBOX_SPEED_AS_CFG]")
    parser.add_argument("--voice-alias", dest="voice_aliases", action="append", type=parse_alias,
                        default=_env_aliases(), metavar="NAME=VOICE_ID",
                        help="let an OpenAI voice name speak with a library voice, e.g. alloy=anwar.wav; repeatable "
                             "[CHATTERBOX_VOICE_ALIASES, comma-separated]")
    parser.add_argument("--max-upload-mb", type=int,
                        default=int(os.environ.get(env_name("max_upload_mb"), defaults.max_upload_mb)),
                        help="largest voice clip an upload may be [CHATTERBOX_MAX_UPLOAD_MB]")
    parser.add_argument("--temporary-voice-seconds", type=int,
                        default=int(os.environ.get(env_name("temporary_voice_seconds"),
                                                   defaults.temporary_voice_seconds)),
                        help="how long a temporary library voice lives [CHATTERBOX_TEMPORARY_VOICE_SECONDS]")
    parser.add_argument("--idle-unload-seconds", type=float,
                        default=float(os.environ.get(env_name("idle_unload_seconds"), defaults.idle_unload_seconds)),
                        help="free the model (and GPU memory) after this many idle seconds; it loads again on the "
                             "next request; 0 keeps it loaded [CHATTERBOX_IDLE_UNLOAD_SECONDS]")
    parser.add_argument("--rate-limit", type=int, default=int(os.environ.get(env_name("rate_limit"), defaults.rate_limit)),
                        help="API requests one client address may make per minute; 0 is no limit "
                             "[CHATTERBOX_RATE_LIMIT]")
    parser.add_argument("--cors-origins", type=lambda text: [o.strip() for o in text.split(",") if o.strip()],
                        default=_env_origins(), metavar="ORIGIN,...",
                        help="web origins whose pages may call the API from a browser; none by default "
                             "[CHATTERBOX_CORS_ORIGINS]")
    parser.add_argument("--open", action="store_true", default=_env_bool(env_name("open")),
                        help="with --share or a non-loopback --host, run without an API key instead of generating "
                             "one [CHATTERBOX_OPEN]")
