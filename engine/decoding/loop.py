"""The studio's own T3 token loop, for the English and multilingual models (a Llama backbone) and Turbo and Nano
(a GPT-2 backbone).

It samples as upstream's `T3.inference` (English) and `T3.inference_turbo` (Turbo) sample: same conditioning, same
logits processors in the same order, same random draws. It keeps keys and values in a preallocated cache instead of
growing them every token, asks the backbone for nothing it does not use, skips the unconditional row when
classifier-free guidance is off (Turbo never guides), and stops a chunk as soon as its request is cancelled.

It also decodes several chunks at once, of one text or of several requests. Every row's prompt starts with its
voice's conditioning (speaker embedding and speech prompt), so the backbone runs over each voice's prefix once,
remembers its keys and values for the voice's next requests, and gives each row a copy (a shorter prefix is padded
to the longest); the rows' own tokens (text, speech start) follow, padded on the left to one length, so every row
takes its next token at the same cache slot. Attention reads only the cache slots filled so far and never a
padding slot. Each chunk draws from a generator of its own seed. A chunk's tokens are then what it would sample
alone, up to float rounding in the batched matrix products.

For multilingual V2 (a Llama backbone too) it also keeps upstream's alignment checks, for every chunk
(engine/decoding/alignment.py); V3 has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from transformers import StaticCache
from transformers.generation.logits_process import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from .alignment import AlignmentGuard, AlignmentHeads

TURBO_TOP_K = 1000  # upstream's `inference_turbo` default, which its `generate` keeps
REMEMBERED_PREFIXES = 4  # in float32 about 8 MB each for the English model, 49 MB for Turbo


@dataclass(frozen=True)
class Sampling:
    """How T3 picks its tokens; the same for every chunk of a request."""

    temperature: float
    top_p: float
    min_p: float
    repetition_penalty: float
    cfg_weight: float


def never() -> bool:
    return False


@dataclass(frozen=True)
class SpeechPrompt:
    """One chunk's T3 input: its text tokens (1, n) with start and stop, its token budget, its seed, its voice's
    conditioning (upstream's `T3Cond`), and whether its request has been cancelled."""

    text_tokens: torch.Tensor
    max_new_tokens: int
    seed: int
    conditioning: Any
    cancelled: Callable[[], bool] = never


class SpeechTokenLoop:
    """Text tokens to speech tokens with one T3 model; `head` may be a quantized copy of T3's speech head. With
    `watches_alignment` (the variant's, multilingual V2's) it keeps upstream's alignment checks."""

    def __init__(self, t3, head: torch.nn.Module | None = None, watches_alignment: bool = False):
        self.t3 = t3
        self.head = head if head is not None else t3.speech_head
        self.backbone_dtype = next(t3.tfmr.parameters()).dtype
        self.turbo = t3.is_gpt
        self.watches_alignment = watches_alignment
        self._prefixes: list[tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]] = []

    def __call__(self, prompts: Sequence[SpeechPrompt], sampling: Sampling) -> list[torch.Tensor]:
        """Speech tokens for each prompt, shape (1, n), its stop token included; fewer from the step its
        `cancelled()` turns true."""
        if not self.watches_alignment:
            return self._decode(prompts, sampling)
        from ..models.upstream import alignment_watched  # engine.models imports this module: not at its top

        with alignment_watched(self.t3.tfmr.config):
            return self._decode(prompts, sampling)

    def _decode(self, prompts: Sequence[SpeechPrompt], sampling: Sampling) -> list[torch.Tensor]:
        t3, hp = self.t3, self.t3.hp
        cfg_weight = 0.0 if self.turbo else sampling.cfg_weight
        rows_per_chunk = 2 if cfg_weight > 0 else 1
        prefixes, inputs, pads = self._prompt_parts(prompts, cfg_weight, rows_per_chunk)
        prefix_lengths = torch.tensor([p.size(1) for p in prefixes], device=inputs.device)
        width = int(prefix_lengths.max())
        budget = max(p.max_new_tokens for p in prompts)
        cache = _FilledSlotsCache(config=t3.cfg, max_cache_len=width + inputs.size(1) + budget)
        batch = _Batch(prefix_lengths.repeat_interleave(rows_per_chunk), pads.repeat_interleave(rows_per_chunk),
                       inputs.size(1), cache.max_cache_len)
        self._share_prefixes(prefixes, cache, rows_per_chunk)
        generators = [torch.Generator(inputs.device).manual_seed(p.seed) for p in prompts]
        limits = torch.tensor([p.max_new_tokens for p in prompts], device=inputs.device)
        pick = self._turbo_scores(sampling) if self.turbo else self._english_scores(sampling)
        generated = torch.full((len(prompts), 1), hp.start_speech_token, dtype=torch.long, device=inputs.device)
        lengths = torch.zeros(len(prompts), dtype=torch.long, device=inputs.device)
        active = torch.ones(len(prompts), dtype=torch.bool, device=inputs.device)
        heads = AlignmentHeads() if self.watches_alignment else None
        guard = None if heads is None else AlignmentGuard(
            (width + pads).tolist(), [p.text_tokens.size(1) for p in prompts], budget, hp.stop_speech_token)
        logits = self._step(inputs, cache, batch.prefill(), heads)
        for step in range(budget):
            if any(cancelled := [prompt.cancelled() for prompt in prompts]):
                active &= ~torch.tensor(cancelled, device=active.device)
                if not bool(active.any()):
                    break
            scores = logits[::rows_per_chunk]
            if rows_per_chunk == 2:
                scores = scores + cfg_weight * (scores - logits[1::2])
            if guard is not None:
                scores = guard.check(heads.take()[::rows_per_chunk], scores, generated[:, -1], active)
            probabilities = torch.softmax(pick(generated, scores), dim=-1)
            tokens = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probabilities, generators)])
            generated = torch.cat([generated, tokens[:, None]], dim=1)
            lengths += active
            active &= (tokens != hp.stop_speech_token) & (lengths < limits)
            if not bool(active.any()):
                break
            embed = self._speech_embeds(tokens[:, None], step + 1)
            logits = self._step(embed.repeat_interleave(rows_per_chunk, dim=0), cache, batch.decode(step), heads)
        return [generated[i : i + 1, 1 : 1 + int(n)] for i, n in enumerate(lengths)]

    @staticmethod
    def _english_scores(sampling: Sampling) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Upstream's `inference` order: repetition penalty over every token so far (speech start included),
        temperature, min-p, top-p."""
        penalty = RepetitionPenaltyLogitsProcessor(penalty=float(sampling.repetition_penalty))
        min_p, top_p = MinPLogitsWarper(min_p=sampling.min_p), TopPLogitsWarper(top_p=sampling.top_p)

        def scores(generated: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
            logits = penalty(generated, logits)
            if sampling.temperature != 1.0:
                logits = logits / sampling.temperature
            return top_p(generated, min_p(generated, logits))

        return scores

    @staticmethod
    def _turbo_scores(sampling: Sampling) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Upstream's `inference_turbo` order: temperature, top-k, top-p, then the repetition penalty, which sees
        the speech start token for the first draw and only the sampled tokens after it."""
        top_k, top_p = TopKLogitsWarper(TURBO_TOP_K), TopPLogitsWarper(top_p=sampling.top_p)
        penalty = RepetitionPenaltyLogitsProcessor(penalty=float(sampling.repetition_penalty))

        def scores(generated: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
            seen = generated if generated.size(1) == 1 else generated[:, 1:]
            if sampling.temperature != 1.0:
                logits = logits / sampling.temperature
            logits = top_k(seen, logits)
            if sampling.top_p < 1.0:
                logits = top_p(seen, logits)
            return penalty(seen, logits)

        return scores

    def _prompt_parts(self, prompts: Sequence[SpeechPrompt], cfg_weight: float, copies: int):
        """Each prompt's conditioning embeddings (1, P, dim), the prefix its rows start with; after them, each
        prompt's text and speech-start embeddings in `copies` rows (guided, unguided), left-padded with zeros to one
        length; and the padding per chunk. Upstream's English loop appends a second speech-start embedding to the
        prompt; Turbo's does not."""
        device = prompts[0].text_tokens.device
        start = torch.full((copies, 1), self.t3.hp.start_speech_token, dtype=torch.long, device=device)
        prefixes, rows = [], []
        for prompt in prompts:
            embeds, prefix_length = self.t3.prepare_input_embeds(
                t3_cond=prompt.conditioning, text_tokens=prompt.text_tokens.repeat(copies, 1), speech_tokens=start,
                cfg_weight=cfg_weight)
            prefixes.append(embeds[:1, :prefix_length])
            own = embeds[:, prefix_length:]
            rows.append(own if self.turbo else torch.cat([own, self._speech_embeds(start, 0)], dim=1))
        length = max(r.size(1) for r in rows)
        pads = torch.tensor([length - r.size(1) for r in rows], device=device)
        padded = [torch.nn.functional.pad(r, (0, 0, length - r.size(1), 0)) for r in rows]
        return prefixes, torch.cat(padded), pads

    def _share_prefixes(self, prefixes: list[torch.Tensor], cache: StaticCache, copies: int) -> None:
        """Copy each prompt's prefix keys and values into the first cache slots of its `copies` rows, zeros after
        a prefix shorter than the longest."""
        states = [self._prefix_states(prefix) for prefix in prefixes]
        width = max(prefix.size(1) for prefix in prefixes)
        slots = torch.arange(width, device=prefixes[0].device)

        def stacked(layer: int, which: int) -> torch.Tensor:
            per_prompt = [torch.nn.functional.pad(s[layer][which], (0, 0, 0, width - s[layer][which].size(2)))
                          for s in states]
            return torch.cat(per_prompt).repeat_interleave(copies, dim=0)

        for layer in range(len(states[0])):
            cache.update(stacked(layer, 0), stacked(layer, 1), layer, {"cache_position": slots})

    def _prefix_states(self, prefix: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The backbone's keys and values per layer for `prefix`, remembered for the last few prefixes used (one
        per voice and exaggeration), so a voice's next request starts from its own text."""
        for index, (embeds, states) in enumerate(self._prefixes):
            if embeds.shape == prefix.shape and torch.equal(embeds, prefix):
                self._prefixes.insert(0, self._prefixes.pop(index))
                return states
        length = prefix.size(1)
        alone = _FilledSlotsCache(config=self.t3.cfg, max_cache_len=length)
        none = torch.zeros(1, dtype=torch.long, device=prefix.device)
        self._backbone(prefix, alone, _Batch(none, none, own_length=length, cache_length=length).prefill())
        states = [(layer.keys, layer.values) for layer in alone.layers]
        self._prefixes = [(prefix, states)] + self._prefixes[: REMEMBERED_PREFIXES - 1]
        return states

    def _speech_embeds(self, tokens: torch.Tensor, position: int) -> torch.Tensor:
        """Speech tokens (rows, 1) embedded at speech position `position`, as upstream embeds them (Turbo's
        backbone adds its own position embeddings)."""
        embeds = self.t3.speech_emb(tokens)
        if self.t3.speech_pos_emb is None:
            return embeds
        return embeds + self.t3.speech_pos_emb.get_fixed_embedding(position)

    def _step(self, embeds: torch.Tensor, cache: "_FilledSlotsCache", where: "_Where",
              heads: AlignmentHeads | None) -> torch.Tensor:
        """The speech logits after `embeds`, which fill the cache slots `where` names; `heads`, if given, sees the
        alignment heads' attention. The backbone may run in another precision than the embeddings and the head,
        which stay in T3's own."""
        hidden = self._backbone(embeds, cache, where, heads)
        return self.head(hidden[:, -1].to(embeds.dtype))

    def _backbone(self, embeds: torch.Tensor, cache: "_FilledSlotsCache", where: "_Where",
                  heads: AlignmentHeads | None = None) -> torch.Tensor:
        """The backbone's last hidden states for `embeds`, whose keys and values fill the cache slots `where`
        names."""
        cache.filled = where.mask.size(-1)
        watching = {} if heads is None else {"alignment_heads": heads}
        return self.t3.tfmr(inputs_embeds=embeds.to(self.backbone_dtype), past_key_values=cache, use_cache=True,
                            cache_position=where.slots, position_ids=where.positions,
                            attention_mask=where.mask, **watching).last_hidden_state


class _FilledSlotsCache(StaticCache):
    """A preallocated cache whose attention reads only its first `filled` slots, those written so far, rather than
    its whole length (which a chunk's token budget sets, often twice what it speaks)."""

    filled = 0

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        keys, values = super().update(key_states, value_states, layer_idx, cache_kwargs)
        return keys[:, :, : self.filled], values[:, :, : self.filled]


@dataclass(frozen=True)
class _Where:
    """Cache slots, per-row positions and the attention mask of one backbone call, over the slots filled after it."""

    slots: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor


class _Batch:
    """Slots, positions and masks for rows that hold their prefix (`prefixes` slots) in the first slots, padded to
    the longest, then their own prompt tokens, padded on the left by `pads` slots, up to slot `prompt_length`."""

    def __init__(self, prefixes: torch.Tensor, pads: torch.Tensor, own_length: int, cache_length: int):
        self.prefix = int(prefixes.max())
        self.prompt_length = self.prefix + own_length
        self.keys = torch.arange(cache_length, device=pads.device)
        in_prefix = self.keys[None, :] < self.prefix
        own = self.keys[None, :] >= self.prefix + pads[:, None]
        self.real = (self.keys[None, :] < prefixes[:, None]) | own  # (rows, cache): slots with a token
        shift = (self.prefix - prefixes + pads)[:, None]  # how far a row's own tokens sit after their positions
        self.positions = torch.where(in_prefix, self.keys, (self.keys - shift).clamp(min=0))

    def prefill(self) -> _Where:
        """The call that feeds the rows' own prompt tokens, after their prefixes are in the cache."""
        slots, keys = self.keys[self.prefix : self.prompt_length], self.keys[: self.prompt_length]
        causal = keys[None, :] <= slots[:, None]  # (own prompt, filled slots)
        itself = keys[None, :] == slots[:, None]  # a padding slot attends to itself, so it is never empty
        mask = causal & (self.real[:, None, : self.prompt_length] | itself)
        return _Where(slots, self.positions[:, slots], mask[:, None])

    def decode(self, step: int) -> _Where:
        """The call that feeds the token sampled at `step`."""
        slot = self.prompt_length + step
        filled = self.real[:, None, None, : slot + 1]
        return _Where(self.keys[slot : slot + 1], self.positions[:, slot : slot + 1], filled)
