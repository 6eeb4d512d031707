"""What a user asked for, in any front door's words, made into the engine's `SynthesisRequest`.

This is the only place that does it. The desk, the Gradio API, the HTTP API, the CLI and the dataset runner each
fill in an `Ask` and call `RequestComposer.compose`, so the same words give the same request everywhere:
- the text, within the input limit;
- the voice: a reference clip, a library voice id, `built-in`, an OpenAI voice name (the built-in voice, or the
  library voice it is aliased to), or a language code (the built-in voice speaking that language);
- the parameters, layered: the library voice's saved defaults, then the preset, then the values given;
- the model: the one asked for, else the studio's default, else, when the default does not speak the language,
  the first variant that does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import audio
from .config import EngineConfig
from .errors import InvalidRequest, NotFound, TextTooLong
from .models.variants import LANGUAGES, VARIANTS, variant
from .presets import PresetShelf
from .reference import check_reference
from .request import PARAMETER_RANGES, SynthesisRequest, Voice
from .voices import VoiceLibrary

# The names OpenAI's clients send as `voice`; each is the built-in voice unless aliased to a library voice.
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
                 "marin", "cedar")
# The built-in voice's own name, for clients that list voices by name (library ids always end in an audio suffix).
BUILTIN_VOICE = "built-in"
# What a voice's saved defaults, a preset and a request's own values may set: the sampling, and what is done to
# the take after it (engine/quality/takes.py).
FINISHING = ("candidates", "trim", "loudness")
PARAMETERS = (*PARAMETER_RANGES, "seed", *FINISHING)


def language_code(tag: str) -> str | None:
    """A language code as the studio spells it: lower case, and a regional tag (`en-US`, `zh_CN`) as its language
    (`en`, `zh`) where the studio has no code for the region; None for blank text."""
    code = tag.strip().lower()
    primary = code.replace("_", "-").split("-")[0]
    return primary if code not in LANGUAGES and primary in LANGUAGES else code or None


@dataclass(frozen=True)
class Ask:
    """What a user asked for, in any front door's words; None leaves a choice to the studio."""

    text: str
    voice: str | None = None  # a library voice id, built-in, an OpenAI voice name or its alias, or a language code
    clip: bytes | None = None  # a reference clip sent with the request; it speaks instead of `voice`
    model: str | None = None
    language: str | None = None
    preset: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)  # parameters given explicitly; None ones are unset
    captions: bool = False  # timed captions wanted: each sentence is made on its own


@dataclass(frozen=True)
class ResolvedVoice:
    """A voice as the engine takes it, with what the library knows of it."""

    voice: Voice
    defaults: Mapping[str, Any]
    language: str | None


class RequestComposer:
    """Turns an `Ask` into a `SynthesisRequest` with the engine's config and voice library, and the studio's
    presets, input limit (None: none) and voice aliases."""

    def __init__(self, config: EngineConfig, library: VoiceLibrary, presets: PresetShelf,
                 max_input_chars: int | None = None, aliases: Mapping[str, str] | None = None):
        self.config = config
        self.library = library
        self.presets = presets
        self.default_model = VARIANTS[config.model]
        self.max_input_chars = max_input_chars
        self.aliases = {name.lower(): voice_id for name, voice_id in (aliases or {}).items()}

    def compose(self, ask: Ask) -> SynthesisRequest:
        """The engine request for `ask`; raises the engine's errors, each saying what to change."""
        self.check_length(ask.text)
        resolved = self.resolve_voice(ask)
        preset = self.presets.load(ask.preset) if ask.preset else {}
        given = {name: value for name, value in ask.values.items() if value is not None}
        unknown = sorted(set(given) - set(PARAMETERS))
        if unknown:
            raise InvalidRequest(f"Unknown parameter {', '.join(unknown)}; use {', '.join(PARAMETERS)}.", unknown[0])
        values = {name: value for name, value in {**resolved.defaults, **preset}.items() if name in PARAMETERS}
        language = self.language_for(ask, resolved)
        model = self.model_for(ask.model, language)
        return SynthesisRequest(ask.text, voice=resolved.voice, model=model, language=language, captions=ask.captions,
                                **(values | given))

    def check_length(self, text: str) -> None:
        """Refuse a text over the input limit (a server's; the terminal has none)."""
        if self.max_input_chars is not None and isinstance(text, str) and len(text) > self.max_input_chars:
            raise TextTooLong(f"The text is {len(text)} characters; the limit is {self.max_input_chars}.")

    def resolve_voice(self, ask: Ask) -> ResolvedVoice:
        """The voice `ask` names, its saved defaults and its language."""
        if ask.clip is not None:
            return ResolvedVoice(Voice(clip=ask.clip), {}, None)
        wanted = (ask.voice or "").strip()
        if not wanted or wanted.lower() == BUILTIN_VOICE:
            return ResolvedVoice(Voice.builtin(), {}, None)
        voice_id = self.aliases.get(wanted.lower(), wanted)
        if voice_id == wanted and wanted.lower() in OPENAI_VOICES:
            return ResolvedVoice(Voice.builtin(), {}, None)
        try:
            saved = self.library.get(voice_id)
        except NotFound:
            if wanted.lower() in LANGUAGES:
                return ResolvedVoice(Voice.builtin(), {}, wanted.lower())
            raise NotFound(f"Unknown voice '{wanted}'. There is no library voice of that id (GET /api/speakers "
                           f"lists them); use one, an OpenAI voice name ({', '.join(OPENAI_VOICES)}) or a language "
                           f"code.", "voice") from None
        return ResolvedVoice(Voice(library_id=saved.id), saved.settings, saved.language)

    def language_for(self, ask: Ask, resolved: ResolvedVoice) -> str | None:
        """The language asked for, else the voice's own, unless a model asked for does not speak it (a library
        voice's language is a default, like its saved settings)."""
        if ask.language:
            return language_code(ask.language)
        if resolved.language and (ask.model not in VARIANTS or VARIANTS[ask.model].speaks(resolved.language)):
            return resolved.language.lower()
        return None

    def model_for(self, asked: str | None, language: str | None) -> str | None:
        """The variant for the request: the one asked for, else None (the studio's default) when the default
        speaks `language`, else the first variant that does."""
        if asked is not None:
            variant(asked).check_language(language)
            return asked
        if self.default_model.speaks(language):
            return None
        speakers = [spec.name for spec in VARIANTS.values() if spec.speaks(language)]
        if not speakers:
            raise InvalidRequest(f"Unsupported language '{language}'; use one of {', '.join(sorted(LANGUAGES))}.",
                                 "language")
        return speakers[0]

    def check_clip(self, clip: bytes, model: str | None = None) -> None:
        """Refuse a clip that cannot clone a voice on `model` (the studio's default when None): the check a voice
        passes to be saved to the library."""
        spec = variant(model or self.config.model)
        samples = audio.decode(clip, audio.MODEL_SAMPLE_RATE, max_seconds=self.config.max_reference_seconds)
        check_reference(samples, audio.MODEL_SAMPLE_RATE, spec.min_reference_seconds, spec.name)
