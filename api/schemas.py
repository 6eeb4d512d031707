"""Request bodies: OpenAI's speech request plus Chatterbox's own parameters."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from engine import MODELS

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: `{"id": "anwar.wav"}`."""

    id: str


class SpeechRequest(BaseModel):
    """`POST /v1/audio/speech`: OpenAI's fields, then Chatterbox extensions. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, description=f"{', '.join(MODELS)}, or an OpenAI name (tts-1, tts-1-hd, "
                                                "gpt-4o-mini-tts) for the default")
    input: str = Field(validation_alias=AliasChoices("input", "text"), description="the text to say")
    voice: str | VoiceRef = Field("alloy", description="a library voice id, {\"id\": ...}, an OpenAI voice name "
                                                       "or a language code")
    response_format: ResponseFormat = "mp3"
    speed: float | None = Field(None, description="0.25 to 4.0, pitch kept (cfg_weight with --speed-as-cfg)")
    instructions: str | float | None = Field(None, description="a number is taken as exaggeration")
    stream_format: Literal["audio", "sse"] | None = Field(
        None, description="audio: chunked bytes as they are made; sse: speech.audio.delta events; unset: one file")
    exaggeration: float | None = None
    cfg_weight: float | None = None
    temperature: float | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    language: str | None = None
    preset: str | None = Field(None, description="a preset name (neutral, expressive, narration, calm, ...)")
    candidates: int | None = Field(None, description="1 to 8: make this many takes of each chunk and keep the one "
                                                     "whose transcript scores best (needs a speech recognizer); the "
                                                     "worst chunk's score comes back in X-Character-Error-Rate")
    trim: bool | None = Field(None, description="cut leading and trailing non-speech (Silero VAD); off by default")
    loudness: float | None = Field(None, description="even the loudness to this many LUFS (EBU R128, e.g. -23 or "
                                                     "-16); peaks never clip")
