"""Tags a person writes in the text: `[pause:1.5s]` for silence, and the sounds a variant can perform (`[laugh]`).

A pause tag is never spoken: the chunk before it ends there and the silence it asks for follows. A sound tag
reaches a variant that performs it as written; any other variant does not read it aloud (it is dropped from what
the model tokenizes, and the response says so). Square brackets that are neither (`[1]`, `[sic]`) are text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidRequest
from ..models.variants import VARIANTS

MAX_PAUSE_SECONDS = 30.0
PAUSE_TAG = re.compile(r"\[\s*pause\s*:\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*\]", re.IGNORECASE)
PAUSE_LIKE = re.compile(r"\[\s*pause\b[^\]]*\]", re.IGNORECASE)
SOUND_TAGS = tuple(sorted({tag for spec in VARIANTS.values() for tag in spec.sound_tags}))
SOUND_TAG = re.compile("|".join(re.escape(f"[{tag}]") for tag in SOUND_TAGS), re.IGNORECASE)
SPACE_RUN = re.compile(r"\s{2,}")


@dataclass(frozen=True)
class Stretch:
    """Text between pause tags: its words, then what follows them up to the next words (whitespace and the tags,
    as written) and the silence those tags ask for (None: no tag follows)."""

    text: str
    after: str
    pause: float | None


def pause_seconds(tag: str) -> float:
    """The silence a pause tag asks for; a clear error for one the studio cannot read."""
    match = PAUSE_TAG.fullmatch(tag)
    if not match:
        raise InvalidRequest(f"'{tag}' is not a pause tag the studio reads; write it as [pause:1.5s] or "
                             f"[pause:500ms].", "input")
    number, unit = float(match.group(1)), (match.group(2) or "s").lower()
    seconds = number / 1000 if unit == "ms" else number
    if seconds > MAX_PAUSE_SECONDS:
        raise InvalidRequest(f"'{tag}' asks for {seconds:g} s of silence; a pause may be at most "
                             f"{MAX_PAUSE_SECONDS:g} s. Use several tags, or shorten it.", "input")
    return seconds


def stretches(paragraph: str) -> list[Stretch]:
    """The paragraph cut at its pause tags. Tags before the first words make a first stretch with no text; tags
    in a row add up."""
    pieces: list[Stretch] = []
    position = 0
    for tag in PAUSE_LIKE.finditer(paragraph):
        seconds = pause_seconds(tag.group())
        before = paragraph[position:tag.start()]
        if pieces and not before.strip():
            last = pieces[-1]
            pieces[-1] = Stretch(last.text, last.after + before + tag.group(), (last.pause or 0.0) + seconds)
        else:
            words = _after_leading_space(pieces, before).rstrip()
            pieces.append(Stretch(words, before[before.index(words) + len(words):] + tag.group(), seconds))
        position = tag.end()
    rest = paragraph[position:]
    if pieces and not rest.strip():
        pieces[-1] = Stretch(pieces[-1].text, pieces[-1].after + rest, pieces[-1].pause)
    else:
        pieces.append(Stretch(_after_leading_space(pieces, rest), "", None))
    return pieces


def _after_leading_space(pieces: list[Stretch], text: str) -> str:
    """`text` less the whitespace it starts with, which goes after the stretch before it."""
    words = text.lstrip()
    if pieces and len(words) < len(text):
        pieces[-1] = Stretch(pieces[-1].text, pieces[-1].after + text[:len(text) - len(words)], pieces[-1].pause)
    return words


def has_pause_tag(text: str) -> bool:
    return bool(PAUSE_LIKE.search(text))


def sound_tags_in(text: str) -> list[str]:
    """The sound tags the text holds, in the order they first appear, as the variant table writes them."""
    found: list[str] = []
    for match in SOUND_TAG.finditer(text):
        tag = match.group()[1:-1].lower()
        if tag not in found:
            found.append(tag)
    return found


def without_sound_tags(text: str, kept: tuple[str, ...] = ()) -> str:
    """The text with every sound tag not in `kept` taken out, and the doubled space it leaves closed."""
    dropped = SOUND_TAG.sub(lambda m: m.group() if m.group()[1:-1].lower() in kept else " ", text)
    return SPACE_RUN.sub(" ", dropped).strip() if dropped != text else text


def without_tags(text: str) -> str:
    """The text with every pause tag and sound tag taken out: what is left to read."""
    return SOUND_TAG.sub(" ", PAUSE_LIKE.sub(" ", text))
