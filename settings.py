"""The studio's one settings object, read from command-line flags and CHATTERBOX_* environment variables."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal

from engine import MODELS, PRECISIONS, EngineConfig, RequestComposer, VoiceLibrary
from engine.placement import PlacementChoice
from engine.presets import PresetShelf

ENV_PREFIX = "CHATTERBOX_"
ENGINE_FIELDS = frozenset(f.name for f in fields(EngineConfig))


@dataclass(frozen=True)
class Settings:
    """The engine's config and the front door's: where the studio listens and what it lets in."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    host: str = "127.0.0.1"
    port: int = 5093
    share: bool = False
    no_browser: bool = False
    max_input_chars: int = 4096
    api_key: str | None = None
    speed_as_cfg: bool = False
    voice_aliases: tuple[tuple[str, str], ...] = ()
    max_upload_mb: int = 20
    temporary_voice_seconds: int = 3600
    presets_dir: Path = Path(__file__).resolve().parent / "presets"
    rate_limit: int = 0
    cors_origins: tuple[str, ...] = ()
    open: bool = False
    wyoming: bool = False
    wyoming_port: int = 10200
    replicas: int = 0
    ray_address: str | None = None
    autoscale: tuple[int, int] | None = None

    def __post_init__(self):
        object.__setattr__(self, "voice_aliases", tuple(tuple(pair) for pair in self.voice_aliases))
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))

    @property
    def aliases(self) -> dict[str, str]:
        """OpenAI voice names (alloy, nova, ...) the user mapped to library voice ids."""
        return dict(self.voice_aliases)

    @property
    def placement(self) -> PlacementChoice:
        """Where the model runs: this process, unless replicas, a Ray address or autoscaling are given."""
        return PlacementChoice(self.replicas, self.ray_address, self.autoscale)

    def presets(self, config: EngineConfig | None = None) -> PresetShelf:
        """The shipped presets (--presets-dir) and a person's own, saved in the data folder of `config` (this
        studio's engine config when None)."""
        return PresetShelf((config or self.engine).data_dir / "presets", self.presets_dir)

    def composer(self, config: EngineConfig, library: VoiceLibrary) -> RequestComposer:
        """The request composer for an engine with `config` and `library`, with this studio's presets, input limit and
        voice aliases."""
        return RequestComposer(config, library, self.presets(config), self.max_input_chars, self.aliases)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """The settings the parsed flags give; what a subcommand has no flag for keeps its default."""
        given = vars(args)
        engine = EngineConfig(**{name: value for name, value in given.items() if name in ENGINE_FIELDS})
        return cls(engine=engine, **{name: value for name, value in given.items() if name in FRONT_DOOR_FIELDS})


FRONT_DOOR_FIELDS = frozenset(f.name for f in fields(Settings)) - {"engine"}


def flag_defaults() -> Settings:
    """What the flags default to: Settings(), except on a Hugging Face Space (SPACE_ID set), which serves the app
    on 0.0.0.0:7860 with no browser to open."""
    if os.environ.get("SPACE_ID"):
        return Settings(host="0.0.0.0", port=7860, no_browser=True)
    return Settings()


def env_name(name: str) -> str:
    """The environment variable of a flag: flow_steps or flow-steps reads CHATTERBOX_FLOW_STEPS."""
    return ENV_PREFIX + name.upper().replace("-", "_")


def parse_alias(text: str) -> tuple[str, str]:
    """`alloy=anwar.wav` as ('alloy', 'anwar.wav')."""
    name, sep, voice_id = text.partition("=")
    if not sep or not name.strip() or not voice_id.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=VOICE_ID (for example alloy=anwar.wav)")
    return name.strip().lower(), voice_id.strip()


def comma_list(text: str) -> list[str]:
    """`a, b,,c` as ['a', 'b', 'c']."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _whole_number(what: str, most: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not 1 <= int(text) <= most:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of {what} from 1 to {most}")
        return int(text)

    return parse


flow_steps = _whole_number("flow steps", 50)


def reference_seconds(text: str) -> float:
    """Seconds of the reference prompt, 1 to 10 (upstream's S3Gen hears at most 10)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 1 <= seconds <= 10:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds from 1 to 10")
    return seconds

batch_requests = _whole_number("requests", 64)
replica_count = _whole_number("replicas", 1024)


def replica_range(text: str) -> tuple[int, int]:
    """`1:4` as (1, 4): autoscaling between one and four replicas."""
    low, sep, high = text.partition(":")
    if not (sep and low.strip().isdigit() and high.strip().isdigit() and 0 <= int(low) <= int(high) and int(high)):
        raise argparse.ArgumentTypeError(f"'{text}' is not MIN:MAX replicas with MIN <= MAX and MAX >= 1 (e.g. 1:4)")
    return int(low), int(high)


@dataclass(frozen=True)
class Flag:
    """One flag: `--NAME` (dashes for underscores), stored as NAME, by default read from CHATTERBOX_NAME, else
    from Settings() or EngineConfig()."""

    name: str
    help: str
    scope: Literal["global", "server"]  # global: every subcommand takes it; server: only `serve`
    parse: Callable[[str], Any] | None = None  # the value's type; None keeps the text
    # a switch is on or off; a repeatable flag adds one value each time it is given, its variable a comma list
    kind: Literal["value", "switch", "repeatable"] = "value"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    option: str | None = None  # the flag as typed, where it is not --NAME

    @property
    def env(self) -> str:
        return env_name(self.name)


FLAGS = (
    Flag("device", "auto (cuda, then mps, then cpu), cuda, cuda:N, mps or cpu", "global"),
    Flag("model", "model variant", "global", choices=MODELS),
    Flag("precision", "fast: int8 T3 on CPU, bfloat16 flow where native, 5 flow steps; exact: computed as upstream "
                      "computes, same output for the same seed", "global", choices=PRECISIONS),
    Flag("flow_steps", "S3Gen flow-matching steps, 1 to 50 (default: 5 fast, 10 exact; more is slower and smoother)",
         "global", flow_steps),
    Flag("reference_seconds", "seconds of the voice's reference clip S3Gen's flow hears, 1 to 10 (default: 4 fast, "
                              "10 exact; more is slower and closer to the voice)", "global", reference_seconds),
    Flag("batch_requests", "most requests whose next chunks T3 samples together, 1 to 64 (default: 16 on a CUDA GPU "
                           "in the fast precision, else 1)", "global", batch_requests),
    Flag("checkpoint_dir", "load weights from this folder (Chatterbox's file layout) instead of the Hugging Face hub",
         "global", Path),
    Flag("data_dir", "where saved voices and outputs live", "global", Path),
    Flag("asr_model", "the speech recognizer that checks takes (dataset --verify, candidates): a faster-whisper "
                      "folder, a model name downloaded on first use (tiny, base, small, ...), or off", "global",
         metavar="DIR|NAME|off"),
    Flag("replicas", "serve from this many engine replicas on a local Ray Serve instance, one model (and one GPU when "
                     "there are GPUs) each; installs the cluster requirements on first use", "global", replica_count),
    Flag("ray_address", "join the Ray cluster at this address (e.g. ray://head:10001 or auto) and serve from engine "
                        "replicas there", "global", metavar="ADDR"),
    Flag("autoscale", "let Ray Serve scale the engine replicas between MIN and MAX by queue length", "global",
         replica_range, metavar="MIN:MAX"),
    Flag("max_chunk_tokens", "most speech tokens per text chunk, 25 per second of audio (1 to 1000)", "global", int),
    Flag("host", "address to listen on", "server"),
    Flag("port", "port to listen on", "server", int),
    Flag("share", "also serve through a public gradio.live link", "server", kind="switch"),
    Flag("no_browser", "do not open a browser tab", "server", kind="switch"),
    Flag("queue_size", "requests that may wait before new ones get a 'busy' answer", "server", int),
    Flag("max_input_chars", "longest text one request may send", "server", int),
    Flag("presets_dir", "folder of preset JSON files", "server", Path),
    Flag("api_key", "require this Bearer token on the HTTP API; off when unset", "server"),
    Flag("speed_as_cfg", "take the OpenAI `speed` field as cfg_weight, as pyVideoTrans sends it", "server",
         kind="switch"),
    Flag("voice_aliases", "let an OpenAI voice name speak with a library voice, e.g. alloy=anwar.wav; repeatable",
         "server", parse_alias, kind="repeatable", metavar="NAME=VOICE_ID", option="--voice-alias"),
    Flag("max_upload_mb", "largest voice clip an upload may be", "server", int),
    Flag("temporary_voice_seconds", "how long a temporary library voice lives", "server", int),
    Flag("idle_unload_seconds", "free the model (and GPU memory) after this many idle seconds; it loads again on the "
                                "next request; 0 keeps it loaded", "server", float),
    Flag("rate_limit", "API requests one client address may make per minute; 0 is no limit", "server", int),
    Flag("cors_origins", "web origins whose pages may call the API from a browser; none by default", "server",
         comma_list, metavar="ORIGIN,..."),
    Flag("open", "with --share or a non-loopback --host, run without an API key instead of generating one", "server",
         kind="switch"),
    Flag("wyoming", "also serve the Wyoming protocol (Home Assistant's local voice) on --host; it has no "
                    "authentication", "server", kind="switch"),
    Flag("wyoming_port", "the Wyoming server's TCP port", "server", int),
)


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    """Flags every subcommand takes: where the model runs and where its weights come from."""
    add_flags(parser, [flag for flag in FLAGS if flag.scope == "global"])


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of `serve`: where the studio listens and what it lets in."""
    add_flags(parser, [flag for flag in FLAGS if flag.scope == "server"])


def add_flags(parser: argparse.ArgumentParser, flags: list[Flag]) -> None:
    """Add `flags` to `parser`, each defaulting to its environment variable, else to the settings' own value."""
    defaults = flag_defaults()
    for flag in flags:
        fallback = getattr(defaults.engine if flag.name in ENGINE_FIELDS else defaults, flag.name)
        option = flag.option or "--" + flag.name.replace("_", "-")
        parser.add_argument(option, dest=flag.name, default=_env_default(flag, fallback), help=_help(flag),
                            **_action(flag))


def _action(flag: Flag) -> dict[str, Any]:
    """How argparse reads the flag: a switch stores True; a value (each time, if repeatable) is parsed."""
    if flag.kind == "switch":
        return {"action": "store_true"}
    action = {"action": "append"} if flag.kind == "repeatable" else {}
    return {**action, "type": flag.parse, "choices": flag.choices, "metavar": flag.metavar}


def _env_default(flag: Flag, fallback: Any) -> Any:
    """The flag's default: its environment variable where set, else `fallback`. A value's text is left for argparse
    to parse, so a bad one is reported as a bad flag would be."""
    raw = os.environ.get(flag.env)
    if flag.kind == "switch":
        return (raw or "").strip().lower() in ("1", "true", "yes", "on") or fallback
    if flag.kind == "repeatable":
        return [flag.parse(item) for item in comma_list(raw or "")] or list(fallback)
    return raw or fallback


def _help(flag: Flag) -> str:
    listed = ", comma-separated" if flag.kind == "repeatable" else ""
    return f"{flag.help} [{flag.env}{listed}]"
