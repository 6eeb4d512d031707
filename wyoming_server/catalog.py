"""What `describe` answers: one TTS program whose voices are the library's and the model's built-in one."""

from __future__ import annotations

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from engine import Engine, SavedVoice
from engine.compose import BUILTIN_VOICE
from engine.models.variants import VARIANTS

PROGRAM = "chatterbox-studio"
ATTRIBUTION = Attribution(name="Resemble AI", url="https://github.com/resemble-ai/chatterbox")


def spoken_languages(engine: Engine) -> list[str]:
    """The language codes of the loaded model, else of the studio's default one."""
    return list(VARIANTS[engine.status()["model"] or engine.config.model].languages)


def _voice(name: str, description: str, languages: list[str]) -> TtsVoice:
    return TtsVoice(name=name, attribution=ATTRIBUTION, installed=True, description=description, version=None,
                    languages=languages)


def _library_voice(voice: SavedVoice, spoken: list[str]) -> TtsVoice:
    """A library voice under its id; a voice saved with a language speaks that one, else the model's."""
    return _voice(voice.id, voice.name, [voice.language.lower()] if voice.language else spoken)


def describe(engine: Engine) -> Info:
    spoken = spoken_languages(engine)
    voices = [_library_voice(voice, spoken) for voice in engine.library.list()]
    voices.append(_voice(BUILTIN_VOICE, "Built-in voice", spoken))
    program = TtsProgram(name=PROGRAM, attribution=ATTRIBUTION, installed=True, version=None,
                         description="Chatterbox Studio: voice-cloning text to speech", voices=voices,
                         supports_synthesize_streaming=True)
    return Info(tts=[program])
