"""The studio's alignment guard decides what upstream's `AlignmentStreamAnalyzer` decides, step by step, from the
same attention weights: here made-up maps that read the text and then linger on its end, go back to its start, or
wander, so every check fires."""

from types import SimpleNamespace

import pytest
import torch
from chatterbox.models.t3.inference.alignment_stream_analyzer import AlignmentStreamAnalyzer

from engine.decoding.alignment import FORCED_LOGIT, AlignmentGuard

STOP, VOCABULARY = 6562, 6563
PREFIX, TEXT = 34, 12  # conditioning slots before the text, text tokens
FRAMES = 60


def upstream_analyzer() -> AlignmentStreamAnalyzer:
    """Upstream's analyzer with a test double for the backbone: its attention hooks go on stand-in layers, and each
    step's maps are handed to it directly."""
    layers = [SimpleNamespace(self_attn=torch.nn.Identity()) for _ in range(14)]
    return AlignmentStreamAnalyzer(SimpleNamespace(layers=layers), None, (PREFIX, PREFIX + TEXT), eos_idx=STOP)


def attending(columns: list[int], keys: int) -> torch.Tensor:
    """Attention rows (one per column given) that put 0.9 on their column and spread the rest evenly."""
    rows = torch.full((len(columns), keys), 0.1 / (keys - 1))
    rows[torch.arange(len(columns)), torch.tensor(columns)] = 0.9
    return rows


def reading(after: str, generator: torch.Generator) -> list[int]:
    """Text token each speech frame attends to: two frames a token through the text, then `after`."""
    read = [PREFIX + min(frame // 2, TEXT - 1) for frame in range(2 * TEXT)]
    rest = FRAMES - len(read)
    if after == "lingers":
        return read + [PREFIX + TEXT - 1] * rest
    if after == "goes back":
        return read + [PREFIX] * rest
    return read + (PREFIX + torch.randint(TEXT, (rest,), generator=generator)).tolist()


@pytest.mark.parametrize("after, repeats", [("lingers", False), ("goes back", False), ("wanders", False),
                                            ("wanders", True)])
def test_alignment_guard_edits_the_logits_as_upstreams_analyzer_does(after, repeats):
    generator = torch.Generator().manual_seed(5)
    analyzer, guard = upstream_analyzer(), AlignmentGuard([PREFIX], [TEXT], FRAMES, STOP)
    tokens = torch.randint(STOP, (FRAMES,), generator=generator)
    if repeats:
        tokens[8:10] = 77
    prompt = PREFIX + TEXT + 2
    maps = [attending([PREFIX] * prompt, prompt)]  # the prompt's queries; the last two are the speech starts
    maps += [attending([column], prompt + frame) for frame, column in enumerate(reading(after, generator))]
    forced = []
    for step, attention in enumerate(maps):
        logits = torch.randn(1, VOCABULARY, generator=generator)
        heads = [attention] * 3
        analyzer.last_aligned_attns = heads
        last_token = int(tokens[step - 1]) if step else STOP - 1
        theirs = analyzer.step(logits.clone(), next_token=last_token)
        ours = guard.check(torch.stack(heads).mean(dim=0)[None], logits, torch.tensor([last_token]),
                           torch.tensor([True]))
        assert torch.equal(ours, theirs), f"step {step}"
        forced.append(bool(ours[0, STOP] == FORCED_LOGIT))
    first_forced = forced.index(True)
    assert first_forced == 10 if repeats else first_forced > 2 * TEXT  # after the repeat, or after the reading
