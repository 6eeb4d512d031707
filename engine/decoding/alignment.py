"""The multilingual model's alignment checks, kept for every chunk of a batch.

Three attention heads of the multilingual T3 follow the text as it is spoken: each new speech token attends most to
the text token it is saying. Upstream's `AlignmentStreamAnalyzer` reads them at every step, for one prompt, and
edits the logits: the stop token is kept away while the text is not yet nearly spoken, and forced once speech
lingers on the last text tokens, goes back to earlier ones, or repeats its last token. The guard here makes the same
decisions from the same attention weights, for each chunk of a batch, and reads those three heads alongside the
backbone's fast attention (upstream switches every layer to eager attention to get them).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

WATCHING_ATTENTION = "sdpa+alignment-heads"  # attention_watching_alignment's name in transformers' registry
FORCED_LOGIT = 2.0**15  # upstream's magnitude for kept-away and forced tokens, safe in every float type

# The frames upstream's thresholds count over: speech tokens, 25 to a second.
LINGER_FRAMES = 5  # on the last three text tokens after the text is complete (200 ms)
RETURN_WEIGHT = 5  # attention summed over frames going back to earlier text after completion


class AlignmentHeads:
    """Collects the attention weights of the alignment heads during one backbone call, for every row."""

    def __init__(self, heads: Sequence[tuple[int, int]] | None = None):
        if heads is None:  # imported here: chatterbox's package takes seconds to import, and `import engine` need not
            from chatterbox.models.t3.inference.alignment_stream_analyzer import LLAMA_ALIGNED_HEADS as heads
        self.heads = dict(heads)
        self.seen: list[torch.Tensor] = []

    def see(self, attention: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor,
            scaling: float) -> None:
        """Record the watched head's weights if `attention` is a watched layer; `mask` is boolean, True to attend."""
        head = self.heads.get(attention.layer_idx)
        if head is None:
            return
        dtype = torch.promote_types(query.dtype, torch.float32)
        keys = key[:, head // attention.num_key_value_groups].to(dtype)
        scores = query[:, head].to(dtype) @ keys.transpose(-1, -2) * scaling
        self.seen.append(torch.softmax(scores.masked_fill(~mask[:, 0], float("-inf")), dim=-1))

    def take(self) -> torch.Tensor:
        """The watched heads' mean weights from the last call, (rows, queries, keys), on the CPU."""
        mean = torch.stack(self.seen).mean(dim=0).cpu()
        self.seen = []
        return mean


def attention_watching_alignment(module, query, key, value, attention_mask, alignment_heads=None, **kwargs):
    """The backbone's SDPA attention, which also shows `alignment_heads` what its watched heads attend to."""
    if alignment_heads is not None:
        alignment_heads.see(module, query, key, attention_mask, kwargs["scaling"])
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


class _ChunkAlignment:
    """One chunk's alignment of speech frames to its text tokens (slots `first_slot` on), as upstream tracks it."""

    def __init__(self, first_slot: int, text_length: int, frames: int):
        self.text = slice(first_slot, first_slot + text_length)
        self.length = text_length
        self.alignment = torch.zeros(frames + 2, text_length)  # the prompt gives two frames, each step one
        self.rows = 0
        self.frame = 0
        self.position = 0
        self.completed_at: int | None = None
        self.previous_token: int | None = None

    def judge(self, attention: torch.Tensor, last_token: int) -> tuple[bool, bool]:
        """(keep the stop token away, force it) for the step whose queries' weights are `attention` (queries,
        keys) and whose last sampled token is `last_token`."""
        frames = (attention[-2:] if self.frame == 0 else attention[-1:])[:, self.text].clone()
        frames[:, self.frame + 1 :] = 0  # no frame may look further ahead than its number
        self.alignment[self.rows : self.rows + len(frames)] = frames
        self.rows += len(frames)
        spoken = int(frames[-1].argmax())
        if -4 < spoken - self.position < 7:
            self.position = spoken
        if self.completed_at is None and self.position >= self.length - 3:
            self.completed_at = self.rows
        repeated = self.frame >= 2 and last_token == self.previous_token
        self.previous_token = last_token
        self.frame += 1
        keep_away = spoken < self.length - 3 and self.length > 5
        return keep_away, repeated or self._lingers() or self._goes_back()

    def _since_completion(self) -> torch.Tensor:
        return self.alignment[self.completed_at : self.rows]

    def _lingers(self) -> bool:
        return self.completed_at is not None and float(self._since_completion()[:, -3:].sum(dim=0).max()) >= LINGER_FRAMES

    def _goes_back(self) -> bool:
        """Attention on earlier text after completion. Upstream fails here on texts of five tokens or fewer, which
        have no earlier text; the guard sees no return there."""
        if self.completed_at is None or self.length <= 5:
            return False
        return float(self._since_completion()[:, :-5].max(dim=1).values.sum()) > RETURN_WEIGHT


class AlignmentGuard:
    """Upstream's alignment checks for each chunk of a batch, applied to the chunks' guided logits."""

    def __init__(self, first_text_slots: Sequence[int], text_lengths: Sequence[int], frames: int, stop_token: int):
        self.chunks = [_ChunkAlignment(slot, length, frames) for slot, length in zip(first_text_slots, text_lengths)]
        self.stop = stop_token

    def check(self, attention: torch.Tensor, scores: torch.Tensor, last_tokens: torch.Tensor,
              active: torch.Tensor) -> torch.Tensor:
        """`scores` (chunks, vocabulary) with the stop token kept away or forced where a chunk's alignment says so;
        `attention` holds the alignment heads' weights of each chunk's guided row."""
        scores = scores.clone()
        for index, (chunk, running, last_token) in enumerate(zip(self.chunks, active.tolist(), last_tokens.tolist())):
            if not running:
                continue
            keep_away, force = chunk.judge(attention[index], last_token)
            if keep_away:
                scores[index, self.stop] = -FORCED_LOGIT
            if force:
                scores[index] = -FORCED_LOGIT
                scores[index, self.stop] = FORCED_LOGIT
        return scores
