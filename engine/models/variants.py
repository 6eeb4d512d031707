"""The Chatterbox variants as data: what each is on disk, what it speaks and how it samples. Imports no torch, so
the request, the web API and the UI can know the variants without loading a model."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import InvalidRequest

LANGUAGES = {
    "ar": "Arabic", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "ms": "Malay", "nl": "Dutch",
    "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "sv": "Swedish",
    "sw": "Swahili", "tr": "Turkish", "zh": "Chinese",
}


@dataclass(frozen=True)
class VariantSpec:
    """What distinguishes one Chatterbox variant on disk and in use."""

    name: str
    repo_id: str
    t3_file: str
    voice_encoder_file: str
    s3gen_file: str
    support_files: tuple[str, ...]  # the tokenizer's files and the built-in voice
    architecture: str  # which loader builds it: "english", "multilingual" or "turbo"
    backbone: str  # T3's transformer: "llama" or "gpt2"
    backbone_config: str  # its size, by the name upstream's T3 looks it up under (engine/models/upstream.py)
    languages: tuple[str, ...]  # the codes it speaks
    takes_language_id: bool  # whether its tokenizer takes a language id
    ignores: tuple[str, ...] = ()  # sampling parameters it ignores
    defaults: tuple[tuple[str, float], ...] = ()  # where upstream's `generate` defaults differ from the English model's
    min_reference_seconds: float = 1.0  # the shortest reference clip it clones from
    optional_files: tuple[str, ...] = ("conds.pt",)  # files it loads without (the built-in voice: then clips only)
    watches_alignment: bool = False  # whether upstream's T3 loop steers the stop token by attention (its analyzer)
    trims_last_token: bool = False  # whether upstream cuts the audio of a chunk's last speech token after S3Gen
    sound_tags: tuple[str, ...] = ()  # the sounds it performs where the text has them in brackets: [laugh]
    upstream_class: str = field(kw_only=True)  # upstream's own model class, "module:Class"

    @property
    def files(self) -> tuple[str, ...]:
        """Every file of the checkpoint, as the hub holds it."""
        return (self.voice_encoder_file, self.t3_file, self.s3gen_file, *self.support_files)

    def missing_files(self, directory: Path) -> list[str]:
        return [f for f in self.files if f not in self.optional_files and not (directory / f).exists()]

    def speaks(self, language: str | None) -> bool:
        """Whether it speaks `language` (a code, any case); no language means its own."""
        return not language or language.lower() in self.languages

    def check_language(self, language: str | None) -> None:
        """Refuse a language it does not speak, naming the variants that do."""
        if self.speaks(language):
            return
        speakers = " or ".join(spec.name for spec in VARIANTS.values() if spec.speaks(language))
        spoken = ", ".join(LANGUAGES[code] for code in self.languages)
        raise InvalidRequest(f"{self.name} speaks {spoken} only; use model {speakers} for language '{language}'.",
                             "language")


# The paralinguistic tags upstream's Turbo demo offers (gradio_tts_turbo_app.py on its main branch); Nano has them too.
TURBO_SOUND_TAGS = ("clear throat", "sigh", "shush", "cough", "groan", "sniff", "gasp", "chuckle", "laugh")

_ENGLISH = VariantSpec(
    "chatterbox", "ResembleAI/chatterbox", t3_file="t3_cfg.safetensors", voice_encoder_file="ve.safetensors",
    s3gen_file="s3gen.safetensors", support_files=("tokenizer.json", "conds.pt"),
    architecture="english", backbone="llama", backbone_config="Llama_520M", languages=("en",),
    takes_language_id=False, upstream_class="chatterbox.tts:ChatterboxTTS",
)
_MULTILINGUAL_V2 = VariantSpec(
    "chatterbox-multilingual", "ResembleAI/chatterbox", t3_file="t3_mtl23ls_v2.safetensors",
    voice_encoder_file="ve.pt", s3gen_file="s3gen.pt",
    support_files=("grapheme_mtl_merged_expanded_v1.json", "conds.pt", "Cangjie5_TC.json"),
    architecture="multilingual", backbone="llama", backbone_config="Llama_520M", languages=tuple(LANGUAGES),
    takes_language_id=True, defaults=(("repetition_penalty", 2.0),), watches_alignment=True,
    upstream_class="chatterbox.mtl_tts:ChatterboxMultilingualTTS",
)
_GPT2_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                         "special_tokens_map.json", "added_tokens.json")
_TURBO = VariantSpec(
    "chatterbox-turbo", "ResembleAI/chatterbox-turbo", t3_file="t3_turbo_v1.safetensors",
    voice_encoder_file="ve.safetensors", s3gen_file="s3gen_meanflow.safetensors",
    support_files=("conds.pt", *_GPT2_TOKENIZER_FILES),
    architecture="turbo", backbone="gpt2", backbone_config="GPT2_medium", languages=("en",),
    takes_language_id=False, ignores=("cfg_weight", "exaggeration", "min_p"), defaults=(("top_p", 0.95),),
    min_reference_seconds=5.0,  # upstream asserts a reference clip longer than 5 s
    sound_tags=TURBO_SOUND_TAGS, upstream_class="chatterbox.tts_turbo:ChatterboxTurboTTS",
)
# Upstream's main branch after 0.1.7 (commit 3f35dfc): V2's files with another T3, no alignment analyzer, a milder
# repetition penalty, and the audio of the last speech token (about 40 ms of noise) cut off.
_MULTILINGUAL_V3 = replace(_MULTILINGUAL_V2, name="chatterbox-multilingual-v3", t3_file="t3_mtl23ls_v3.safetensors",
                           defaults=(("repetition_penalty", 1.2),), watches_alignment=False, trims_last_token=True)
# Upstream's main branch after 0.1.7 (commit 5de7a54): Turbo with a GPT-2 small T3 (110M parameters in all), in a
# repository of its own. Upstream downloads its tokenizer as "*.json" and "*.txt"; tokenizer.json alone makes it.
_NANO = replace(_TURBO, name="chatterbox-nano", repo_id="ResembleAI/chatterbox-nano", t3_file="t3_nano_v1.safetensors",
                backbone_config="GPT2_small", optional_files=("conds.pt", *_GPT2_TOKENIZER_FILES[1:]))

VARIANTS = {spec.name: spec for spec in (_ENGLISH, _MULTILINGUAL_V2, _MULTILINGUAL_V3, _TURBO, _NANO)}

MODELS = tuple(VARIANTS)


def variant(name: str) -> VariantSpec:
    """The variant called `name`; a clear error for an unknown one."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise InvalidRequest(f"Unknown model '{name}'; choose one of {', '.join(MODELS)}.", "model") from None
