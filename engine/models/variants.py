"""The Chatterbox variants as data: what each is on disk, what it speaks and how it samples. Imports no torch, so
the request, the web API and the UI can know the variants without loading a model."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    files: tuple[str, ...]
    architecture: str  # which loader builds it: "english", "multilingual" or "turbo"
    backbone: str  # T3's transformer: "llama" or "gpt2"
    languages: tuple[str, ...]  # the codes it speaks
    takes_language_id: bool  # whether its tokenizer takes a language id
    ignores: tuple[str, ...] = ()  # sampling parameters it ignores
    defaults: tuple[tuple[str, float], ...] = ()  # where upstream's `generate` defaults differ from the English model's
    min_reference_seconds: float = 1.0  # the shortest reference clip it clones from
    sound_tags: tuple[str, ...] = ()  # the sounds it performs where the text has them in brackets: [laugh]
    upstream_class: str = field(kw_only=True)  # upstream's own model class, "module:Class"

    def missing_files(self, directory: Path) -> list[str]:
        return [f for f in self.files if f != "conds.pt" and not (directory / f).exists()]

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


# The paralinguistic tags upstream's Turbo demo offers (gradio_tts_turbo_app.py on its main branch).
TURBO_SOUND_TAGS = ("clear throat", "sigh", "shush", "cough", "groan", "sniff", "gasp", "chuckle", "laugh")

VARIANTS = {
    "chatterbox": VariantSpec(
        "chatterbox", "ResembleAI/chatterbox", "t3_cfg.safetensors",
        ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json", "conds.pt"),
        architecture="english", backbone="llama", languages=("en",), takes_language_id=False,
        upstream_class="chatterbox.tts:ChatterboxTTS",
    ),
    "chatterbox-multilingual": VariantSpec(
        "chatterbox-multilingual", "ResembleAI/chatterbox", "t3_mtl23ls_v2.safetensors",
        ("ve.pt", "t3_mtl23ls_v2.safetensors", "s3gen.pt", "grapheme_mtl_merged_expanded_v1.json", "conds.pt",
         "Cangjie5_TC.json"),
        architecture="multilingual", backbone="llama", languages=tuple(LANGUAGES), takes_language_id=True,
        defaults=(("repetition_penalty", 2.0),), upstream_class="chatterbox.mtl_tts:ChatterboxMultilingualTTS",
    ),
    "chatterbox-turbo": VariantSpec(
        "chatterbox-turbo", "ResembleAI/chatterbox-turbo", "t3_turbo_v1.safetensors",
        ("ve.safetensors", "t3_turbo_v1.safetensors", "s3gen_meanflow.safetensors", "conds.pt",
         "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
         "added_tokens.json"),
        architecture="turbo", backbone="gpt2", languages=("en",), takes_language_id=False,
        ignores=("cfg_weight", "exaggeration", "min_p"), defaults=(("top_p", 0.95),),
        min_reference_seconds=5.0,  # upstream asserts a reference clip longer than 5 s
        sound_tags=TURBO_SOUND_TAGS,
        upstream_class="chatterbox.tts_turbo:ChatterboxTurboTTS",
    ),
}

MODELS = tuple(VARIANTS)


def variant(name: str) -> VariantSpec:
    """The variant called `name`; a clear error for an unknown one."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise InvalidRequest(f"Unknown model '{name}'; choose one of {', '.join(MODELS)}.", "model") from None
