"""The synthesis pipeline: text chunks through T3 and S3Gen on one model, the next chunks of several requests
sampled together."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from . import audio, text as text_prep
from .text import tags
from .decoding.acceleration import plan
from .config import EngineConfig
from .decoding.loop import Sampling, SpeechPrompt
from .errors import ModelUnavailable
from .models import VARIANTS, LoadedModel, VariantSpec, accelerated, load, locate_weights, resolve_device, token_budget
from .reference import check_reference
from .request import MAX_SEED, PARAMETER_RANGES, SynthesisRequest
from .voices import ConditionalsCache, VoiceLibrary, clip_key

log = logging.getLogger(__name__)


def chunk_texts(request: SynthesisRequest, chunk_chars: int) -> list[text_prep.TextChunk]:
    """The request's text as the chunks the model speaks one by one, cut by the sentence rules of its language:
    whole phrases, a sentence each (for captions), or sentences packed up to the request's own chunk length, else
    `chunk_chars`."""
    chunk_text = (text_prep.phrases if request.separate_phrases else
                  text_prep.sentence_chunks if request.captions else text_prep.split)
    return chunk_text(request.text, request.max_chars_per_chunk or chunk_chars, request.language)


class Synthesizer:
    """Owns the model. Only the engine's worker thread calls it, so the model never runs twice at once."""

    def __init__(self, config: EngineConfig, library: VoiceLibrary, status: Callable[[str], None] = log.info):
        self.config = config
        self.library = library
        self.status = status
        self.model: LoadedModel | None = None
        self.cache = ConditionalsCache(config.voice_cache_size)
        self.device = resolve_device(config.device)
        self.acceleration = plan(config.precision, self.device, config.flow_steps, config.batch_requests,
                                 config.reference_seconds)

    def spec_for(self, request: SynthesisRequest) -> VariantSpec:
        """The variant that serves `request`: its own model, else the studio's default."""
        return VARIANTS[request.model or self.config.model]

    def has_loaded(self, request: SynthesisRequest) -> bool:
        """Whether the model `request` runs on is loaded already."""
        return self.model is not None and self.model.spec == self.spec_for(request)

    def model_for(self, name: str | None) -> LoadedModel:
        """The loaded variant `name`, loading it (and freeing any other) on first use."""
        spec = VARIANTS[name or self.config.model]
        if self.model is not None and self.model.spec == spec:
            return self.model
        try:
            directory = locate_weights(spec, self.config.checkpoint_dir, self.status)
            self.unload()
            acceleration = accelerated(spec, self.acceleration)
            self.status(f"Loading {spec.name} on {self.device} ({acceleration.describe()})…")
            self.model = load(spec, directory, self.device, acceleration)
        except ModelUnavailable as error:  # the person who asked hears why; the status tells what is loaded
            log.warning("Could not load %s: %s", spec.name, error.message)
            self.status(self.loaded_state())
            raise
        self.status(self.loaded_state())
        return self.model

    def loaded_state(self) -> str:
        """The status line for the model that is actually loaded."""
        if self.model is None:
            return "No model is loaded; the next request loads one."
        return f"{self.model.spec.name} ready on {self.device}."

    def same_model(self, request: SynthesisRequest, synthesis: "Synthesis") -> bool:
        """Whether `request` runs on the model `synthesis` runs on."""
        return self.spec_for(request) == synthesis.model.spec

    def unload(self) -> None:
        if self.model is not None:
            self.model.release()
            self.model = None
            self.cache.clear()

    def ignored_parameters(self, request: SynthesisRequest) -> list[str]:
        """The parameters this request set that its variant does not use."""
        spec = self.spec_for(request)
        spec.check_language(request.language)
        return [p for p in spec.ignores if getattr(request, p) not in (None, PARAMETER_RANGES[p][2])]

    def ignored_tags(self, request: SynthesisRequest) -> list[str]:
        return ignored_tags(request, self.spec_for(request))

    def prepare(self, request: SynthesisRequest, cancelled: Callable[[], bool]) -> "Synthesis":
        """The request's chunks and their T3 prompts, with the model loaded and the voice's conditionals at hand;
        `cancelled()` tells whether the request has been cancelled."""
        chunks = chunk_texts(request, self.config.chunk_chars)
        model = self.model_for(request.model)
        request = request.with_defaults(dict(model.spec.defaults))
        conds = self.conditionals(model, request)
        t3_cond = model.t3_conditioning(conds, request.exaggeration)
        sampling = Sampling(request.temperature, request.top_p, request.min_p, request.repetition_penalty,
                            request.cfg_weight)
        cap = request.max_tokens_per_chunk or self.config.max_chunk_tokens
        texts = [spoken(chunk, model.spec) for chunk in chunks]
        prompts = [SpeechPrompt(model.text_tokens(text, request.language), token_budget(text, cap),
                                ((request.seed or 0) + index) % (MAX_SEED + 1), t3_cond, cancelled)
                   for index, text in enumerate(texts)]
        model.check_prompts(prompts)
        return Synthesis(request, model, conds, sampling, chunks, texts, prompts,
                         batches(len(chunks), model.chunks_per_batch))

    def sample(self, syntheses: Sequence["Synthesis"]) -> list[list]:
        """T3 for the next group of chunks of each synthesis, all in one batch: their speech tokens, per synthesis.
        They share the loaded model and their sampling settings."""
        groups = [synthesis.next_prompts() for synthesis in syntheses]
        tokens = iter(syntheses[0].model.speech_tokens([prompt for group in groups for prompt in group],
                                                       syntheses[0].sampling))
        return [[next(tokens) for _ in group] for group in groups]

    def vocode(self, synthesis: "Synthesis", tokens: list) -> list[audio.AudioChunk]:
        """S3Gen: the audio of the synthesis' next group of chunks from their speech tokens; the group is then done."""
        model, request = synthesis.model, synthesis.request
        group = synthesis.groups[synthesis.done]
        pieces = []
        first = synthesis.prompts[group[0]]
        rate = model.sample_rate
        for index, wav in zip(group, model.vocode(tokens, synthesis.conditionals, first.seed, first.cancelled)):
            chunk = synthesis.chunks[index]
            before = audio.silence(chunk.pause_before, rate)
            after = audio.silence(pause_after(chunk, request.speed), rate)
            speech = audio.fade_edges(audio.time_stretch(wav, rate, request.speed), rate)
            pieces.append(audio.AudioChunk(rate, np.concatenate([before, speech, after]), index, len(synthesis.chunks),
                                           synthesis.texts[index], len(before), len(after)))
        synthesis.done += 1
        return pieces

    def conditionals(self, model: LoadedModel, request: SynthesisRequest):
        """The speaker conditionals for the request's voice, from the cache when seen before."""
        voice = request.voice
        if voice.is_builtin:
            return model.builtin_conditionals
        clip = voice.clip if voice.clip is not None else self.library.clip(voice.library_id)
        return self.cache.get_or_make((model.spec.name, clip_key(clip)), lambda: self._derive(model, clip))

    def _derive(self, model: LoadedModel, clip: bytes):
        wav = audio.decode(clip, model.sample_rate, max_seconds=self.config.max_reference_seconds)
        check_reference(wav, model.sample_rate, model.spec.min_reference_seconds, model.spec.name)
        return model.conditionals(wav)


def preview(request: SynthesisRequest, config: EngineConfig) -> list[str]:
    """What synthesis will make of the request, a line each: the silence that leading pause tags ask for, then each
    chunk as its model is given it, with the silence after it; last, the sound tags the model leaves unsaid."""
    spec = VARIANTS[request.model or config.model]
    chunks = chunk_texts(request, config.chunk_chars)
    lines = [f"(silence: {chunks[0].pause_before:g} s)"] if chunks[0].pause_before else []
    for number, chunk in enumerate(chunks, 1):
        pause = pause_after(chunk, request.speed)
        lines.append(f"{number}. {spoken(chunk, spec)}" + (f"  ⏸ {pause:.3g} s" if pause else ""))
    if ignored := ignored_tags(request, spec):
        lines.append(f"({spec.name} does not perform {', '.join(ignored)}: left unsaid)")
    return lines


def ignored_tags(request: SynthesisRequest, spec: VariantSpec) -> list[str]:
    """The sound tags in the request's text that `spec` does not perform (they are left unsaid)."""
    return [f"[{tag}]" for tag in tags.sound_tags_in(request.text) if tag not in spec.sound_tags]


def spoken(chunk: text_prep.TextChunk, spec: VariantSpec) -> str:
    """What the model is given to say of a chunk: its text, less the sound tags the variant does not perform."""
    return tags.without_sound_tags(chunk.text, spec.sound_tags)


def pause_after(chunk: text_prep.TextChunk, speed: float) -> float:
    """The silence after a chunk: a sentence's or a clause's, as fast as the speech; a pause tag's, as written."""
    return chunk.pause_after if chunk.sentences[-1].tagged_pause else chunk.pause_after / speed


@dataclass
class Synthesis:
    """One request on its way through the model: its chunks, what the model is given to say of each, their T3
    prompts, and the groups of chunks that go through the model together, `done` of them made so far."""

    request: SynthesisRequest
    model: LoadedModel
    conditionals: Any
    sampling: Sampling
    chunks: list[text_prep.TextChunk]
    texts: list[str]
    prompts: list[SpeechPrompt]
    groups: list[range]
    done: int = 0

    @property
    def finished(self) -> bool:
        return self.done == len(self.groups)

    def next_prompts(self) -> list[SpeechPrompt]:
        return [self.prompts[i] for i in self.groups[self.done]]

    def next_chunks(self) -> str:
        """The chunks the model makes next, as a person counts them: "chunk 1 of 9", "chunks 2-5 of 9"."""
        group = self.groups[self.done]
        which = f"chunk {group[0] + 1}" if len(group) == 1 else f"chunks {group[0] + 1}-{group[-1] + 1}"
        return f"{which} of {len(self.chunks)}"


def batches(count: int, size: int) -> list[range]:
    """Chunk indices in T3 batches of up to `size`: the first chunk alone, so its audio comes soonest."""
    first = [range(0, 1)] if count else []
    return first + [range(start, min(count, start + size)) for start in range(1, count, size)]
