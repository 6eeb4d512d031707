"""A loaded variant: the calls the synthesis pipeline makes on it, the same for every architecture; where one
architecture works its own way, the model asks its architecture's loader (engine/models/loading.py)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..decoding.acceleration import Acceleration, shortened_reference
from ..decoding.loop import Sampling, SpeechPrompt, SpeechTokenLoop, never
from ..errors import InvalidRequest, SynthesisFailed
from .upstream import flow_stopping_when
from .variants import VariantSpec

if TYPE_CHECKING:
    from .loading import EnglishLoader

SPEECH_VOCAB = 6561  # token ids at or above this are control tokens, dropped before S3Gen
SAMPLES_PER_TOKEN = 960  # S3Gen makes 2 mel frames per speech token and 480 samples (at 24 kHz) per frame
JOINT_VOCODE_TOKENS = 1000  # the most speech tokens upstream's `generate` vocodes in one call
SHORTEST_ANALYZED_TEXT = 6  # text tokens (start, language and stop included) upstream's alignment analyzer needs


class LoadedModel:
    """One variant on one device, with the calls the synthesis pipeline makes."""

    def __init__(self, spec: VariantSpec, loader: EnglishLoader, upstream, device: str,
                 acceleration: Acceleration = Acceleration(), token_loop: SpeechTokenLoop | None = None):
        self.spec = spec
        self.loader = loader
        self.upstream = upstream
        self.device = device
        self.acceleration = acceleration
        self.token_loop = token_loop
        self.sample_rate = upstream.sr

    @property
    def builtin_conditionals(self):
        if self.upstream.conds is None:
            raise InvalidRequest("This checkpoint has no built-in voice (conds.pt); give a reference clip.", "voice")
        return self.upstream.conds

    def conditionals(self, wav24k: np.ndarray):
        """Speaker conditionals from a 24 kHz clip, as upstream's `prepare_conditionals` derives them."""
        from chatterbox.models.s3gen import S3GEN_SR
        from chatterbox.models.s3tokenizer import S3_SR
        from chatterbox.models.t3.modules.cond_enc import T3Cond
        from chatterbox.tts import Conditionals
        import librosa

        model = self.upstream
        wav24k = self.loader.reference(model, wav24k)
        ref_16k = librosa.resample(wav24k, orig_sr=S3GEN_SR, target_sr=S3_SR)
        with torch.inference_mode():
            gen = model.s3gen.embed_ref(wav24k[: model.DEC_COND_LEN], S3GEN_SR, device=self.device)
            prompt_tokens = None
            if plen := model.t3.hp.speech_cond_prompt_len:
                prompt_tokens, _ = model.s3gen.tokenizer.forward([ref_16k[: model.ENC_COND_LEN]], max_len=plen)
                prompt_tokens = torch.atleast_2d(prompt_tokens).to(self.device)
            speaker = torch.from_numpy(model.ve.embeds_from_wavs([ref_16k], sample_rate=S3_SR))
            speaker = speaker.mean(axis=0, keepdim=True).to(self.device)
        t3 = T3Cond(speaker_emb=speaker, cond_prompt_speech_tokens=prompt_tokens,
                    emotion_adv=0.5 * torch.ones(1, 1, 1)).to(device=self.device)
        return Conditionals(t3, gen)

    def t3_conditioning(self, conds, exaggeration: float):
        """The T3 conditioning with this request's exaggeration (the cached conditionals stay untouched)."""
        from chatterbox.models.t3.modules.cond_enc import T3Cond

        current = conds.t3
        if float(exaggeration) == float(current.emotion_adv[0, 0, 0]):
            return current
        return T3Cond(speaker_emb=current.speaker_emb, cond_prompt_speech_tokens=current.cond_prompt_speech_tokens,
                      emotion_adv=exaggeration * torch.ones(1, 1, 1)).to(device=self.device)

    def text_tokens(self, text: str, language: str | None) -> torch.Tensor:
        """Upstream's punctuation clean-up and tokenization, with start and stop tokens: one row, no CFG copy."""
        return self.loader.text_tokens(self.upstream, text, language, self.device)

    @property
    def chunks_per_batch(self) -> int:
        """How many chunks of one text go through the model together: the studio's loop decodes them as one T3
        batch (upstream's path one after another), then S3Gen vocodes them as one sequence."""
        return self.acceleration.chunk_batch

    def speech_tokens(self, prompts: list[SpeechPrompt], sampling: Sampling) -> list[torch.Tensor]:
        """T3: each prompt's text to speech tokens, sampled as upstream samples them; control tokens dropped.
        Upstream's path takes the prompts one after another, each drawing from the global generator seeded with its
        seed as upstream's `generate` seeds it, and gives a prompt cancelled before its turn no tokens; the
        studio's token loop decodes them together and stops a cancelled prompt mid-chunk."""
        from chatterbox.models.s3tokenizer import drop_invalid_tokens

        with torch.inference_mode():
            if self.token_loop is None:
                rows = []
                for prompt in prompts:
                    if prompt.cancelled():
                        rows.append(torch.zeros(0, dtype=torch.long))
                        continue
                    torch.manual_seed(prompt.seed)
                    rows.append(self.loader.speech_tokens(self.upstream.t3, prompt, sampling))
            else:
                rows = [drop_invalid_tokens(row[0]) for row in self.token_loop(prompts, sampling)]
            return [tokens[tokens < SPEECH_VOCAB].to(self.device) for tokens in rows]

    def check_prompts(self, prompts: list[SpeechPrompt]) -> None:
        """Refuse a text upstream's own T3 loop fails on: where it analyzes the alignment (multilingual V2), its
        analyzer raises an IndexError on a text of five tokens or fewer (the studio's loop takes them)."""
        if self.token_loop is None and self.spec.watches_alignment and any(
                prompt.text_tokens.size(1) < SHORTEST_ANALYZED_TEXT for prompt in prompts):
            raise InvalidRequest(f"This text is too short for {self.spec.name} in the exact precision, whose "
                                 "upstream checks fail on a word or two; add a few words, or use --precision fast.",
                                 "text")

    def vocode(self, chunks: list[torch.Tensor], conds, seed: int,
               cancelled: Callable[[], bool] = never) -> list[np.ndarray]:
        """S3Gen: each chunk's speech tokens to a 24 kHz waveform, watermarked as upstream does.
        Consecutive chunks are vocoded as one sequence of up to 1000 tokens (the most upstream's `generate` vocodes
        at once), so the flow runs over the reference prompt once for them rather than once each; the waveform is
        then cut at the chunks' token boundaries and each piece starts with upstream's trim fade. The vocoder draws
        random noise: after upstream's T3 path from where T3's draws left the global generator (as upstream's
        `generate` does), after the studio's loop, which keeps its own generators, from `seed`. Once `cancelled()`
        turns true, the flow raises Cancelled before its next step."""
        if any(tokens.numel() == 0 for tokens in chunks):
            raise SynthesisFailed("The model produced no speech for this text; try other wording or another seed.")
        if self.token_loop is not None:
            torch.manual_seed(seed)
        pieces = []
        reference = shortened_reference(conds.gen, self.acceleration.reference_seconds)
        with torch.inference_mode(), flow_stopping_when(self.upstream.s3gen, cancelled):
            for run in joint_runs([tokens.numel() for tokens in chunks], JOINT_VOCODE_TOKENS):
                wav = self.loader.waveform(self.upstream.s3gen, torch.cat([chunks[i] for i in run]), reference,
                                           self.acceleration.flow_steps)
                pieces += self._cut(wav.squeeze(0), [chunks[i].numel() for i in run])
        return [self._watermarked(piece) for piece in pieces]

    def _cut(self, wav: torch.Tensor, token_counts: list[int]) -> list[torch.Tensor]:
        """The waveform of consecutive chunks, cut at their token boundaries; the last piece keeps any tail. Where
        the variant `trims_last_token` (V3), each piece then loses its last token's audio, as upstream's main
        branch cuts its waveform (it decodes to noise), keeping at least one token's."""
        ends = np.cumsum(token_counts[:-1]) * SAMPLES_PER_TOKEN
        pieces = list(torch.tensor_split(wav, [int(end) for end in ends]))
        trim = self.upstream.s3gen.trim_fade
        for piece in pieces[1:]:
            piece[: len(trim)] *= trim[: len(piece)]
        if self.spec.trims_last_token:
            pieces = [piece[: max(1, count - 1) * SAMPLES_PER_TOKEN] for piece, count in zip(pieces, token_counts)]
        return pieces

    def _watermarked(self, wav: torch.Tensor) -> np.ndarray:
        marked = self.upstream.watermarker.apply_watermark(wav.detach().cpu().numpy(), sample_rate=self.sample_rate)
        return np.asarray(marked, dtype=np.float32)

    def release(self) -> None:
        """Drop the weights and give memory back to the device."""
        self.upstream = None
        import gc

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def joint_runs(token_counts: list[int], limit: int) -> list[range]:
    """Consecutive chunks grouped into runs of at most `limit` tokens; a longer chunk makes a run alone."""
    runs, start, total = [], 0, 0
    for index, count in enumerate(token_counts):
        if index > start and total + count > limit:
            runs.append(range(start, index))
            start, total = index, 0
        total += count
    return runs + [range(start, len(token_counts))] if token_counts else runs


def token_budget(text: str, cap: int) -> int:
    """Speech tokens allowed for a text: generous for slow speech (25 tokens/s), yet a stop for babbling."""
    return max(1, min(cap, 50 + math.ceil(3.5 * len(text))))
