"""The studio's own T3 token loop for Llama-backed Chatterbox models.

It samples as upstream's `T3.inference` samples (same conditioning, same logits processors in the same order, same
random draws), but keeps keys and values in a preallocated cache instead of growing them every token, asks the
backbone for nothing it does not use, skips the unconditional row when classifier-free guidance is off, and stops
as soon as the request is cancelled.
"""

from __future__ import annotations

from typing import Callable

import torch
from transformers import StaticCache
from transformers.generation.logits_process import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                                                    TopPLogitsWarper)


class SpeechTokenLoop:
    """Text tokens to speech tokens with one T3 model; `head` may be a quantized copy of T3's speech head."""

    def __init__(self, t3, head: torch.nn.Module | None = None):
        self.t3 = t3
        self.head = head if head is not None else t3.speech_head

    def __call__(self, text_tokens: torch.Tensor, t3_cond, sampling, cancelled: Callable[[], bool]) -> torch.Tensor:
        """Speech tokens for one row of text tokens (with start and stop), stop token included, shape (1, n);
        fewer when `cancelled()` turns true."""
        t3, hp = self.t3, self.t3.hp
        guided = sampling.cfg_weight > 0
        rows = torch.cat([text_tokens, text_tokens]) if guided else text_tokens
        start = torch.full((rows.size(0), 1), hp.start_speech_token, dtype=torch.long, device=rows.device)
        embeds, _ = t3.prepare_input_embeds(t3_cond=t3_cond, text_tokens=rows, speech_tokens=start,
                                            cfg_weight=sampling.cfg_weight)
        bos = t3.speech_emb(start) + t3.speech_pos_emb.get_fixed_embedding(0)
        inputs = torch.cat([embeds, bos], dim=1)
        cache = StaticCache(config=t3.cfg, max_cache_len=inputs.size(1) + sampling.max_new_tokens)
        penalty = RepetitionPenaltyLogitsProcessor(penalty=float(sampling.repetition_penalty))
        min_p, top_p = MinPLogitsWarper(min_p=sampling.min_p), TopPLogitsWarper(top_p=sampling.top_p)
        generated = start[:1]
        logits = self._step(inputs, cache, 0)
        for step in range(sampling.max_new_tokens):
            if cancelled():
                break
            scores = logits[0:1]
            if guided:
                scores = scores + sampling.cfg_weight * (scores - logits[1:2])
            scores = penalty(generated, scores)
            if sampling.temperature != 1.0:
                scores = scores / sampling.temperature
            scores = top_p(generated, min_p(generated, scores))
            token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)
            generated = torch.cat([generated, token], dim=1)
            if token.item() == hp.stop_speech_token:
                break
            embed = t3.speech_emb(token) + t3.speech_pos_emb.get_fixed_embedding(step + 1)
            logits = self._step(embed.expand(rows.size(0), -1, -1), cache, inputs.size(1) + step)
        return generated[:, 1:]

    def _step(self, embeds: torch.Tensor, cache: StaticCache, position: int) -> torch.Tensor:
        """The speech logits after `embeds`, which start at `position` in the sequence."""
        positions = torch.arange(position, position + embeds.size(1), device=embeds.device)
        hidden = self.t3.tfmr(inputs_embeds=embeds, past_key_values=cache, use_cache=True,
                              cache_position=positions).last_hidden_state
        return self.head(hidden[:, -1])
