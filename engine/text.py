"""Text preparation: clean up what users paste, then split long text into chunks the model handles well."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .errors import InvalidRequest

SENTENCE_END = re.compile(r"(?<=[.!?。！？…])[\"'”’)\]]*\s+|(?<=[。！？])")
CLAUSE_END = re.compile(r"(?<=[,;:，、；：—])\s*")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")

SENTENCE_PAUSE = 0.3
PARAGRAPH_PAUSE = 0.6
CLAUSE_PAUSE = 0.15


@dataclass(frozen=True)
class TextChunk:
    """One piece of text for one model call, and the silence that follows it."""

    text: str
    pause_after: float


def normalize(text: str) -> str:
    """NFC, no control characters, single spaces; paragraph breaks kept as blank lines."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    paragraphs = [" ".join(p.split()) for p in PARAGRAPH_BREAK.split(text.replace("\r", ""))]
    return "\n\n".join(p for p in paragraphs if p)


def has_words(text: str) -> bool:
    """Whether `text` holds any letter or digit to speak."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def check_speakable(text: str) -> None:
    """Refuse text that has nothing to say, with a message that says so."""
    if not text.strip():
        raise InvalidRequest("The text is empty; type something to say.", "input")
    if not has_words(text):
        raise InvalidRequest(
            "The text has no letters or digits to speak (only punctuation, symbols or emoji); type some words.",
            "input",
        )


def split(text: str, max_chars: int = 250) -> list[TextChunk]:
    """Chunks of at most `max_chars`, cut at sentence ends where possible, then at clauses, then at words.

    The first sentence is a chunk of its own, so streamed audio can start early.
    """
    text = normalize(text)
    check_speakable(text)
    chunks: list[TextChunk] = []
    for paragraph in text.split("\n\n"):
        pieces = _pieces(paragraph, max_chars)
        packed = _pack(pieces, max_chars, first_alone=not chunks)
        chunks.extend(packed)
        chunks[-1] = TextChunk(chunks[-1].text, PARAGRAPH_PAUSE)
    chunks[-1] = TextChunk(chunks[-1].text, 0.0)
    return [c for c in chunks if has_words(c.text)]


def phrases(text: str, max_chars: int = 250) -> list[TextChunk]:
    """Each paragraph as one chunk with no pause after it, for texts whose paragraphs are separate utterances."""
    text = normalize(text)
    check_speakable(text)
    chunks = [TextChunk(paragraph, 0.0) for paragraph in text.split("\n\n")]
    for number, chunk in enumerate(chunks, 1):
        if not has_words(chunk.text):
            raise InvalidRequest(f"Phrase {number} has no letters or digits to speak; remove it or add words.", "input")
        if len(chunk.text) > max_chars:
            raise InvalidRequest(f"Phrase {number} is {len(chunk.text)} characters; a phrase may have at most "
                                 f"{max_chars}. Split it, or send it as a text of its own.", "input")
    return chunks


def _pieces(paragraph: str, max_chars: int) -> list[TextChunk]:
    """Sentences (and parts of overlong sentences) each with the pause that follows it."""
    pieces = []
    for sentence in filter(None, (s.strip() for s in SENTENCE_END.split(paragraph))):
        if len(sentence) <= max_chars:
            pieces.append(TextChunk(sentence, SENTENCE_PAUSE))
            continue
        parts = _split_long(sentence, max_chars)
        pieces.extend(TextChunk(p, CLAUSE_PAUSE) for p in parts[:-1])
        pieces.append(TextChunk(parts[-1], SENTENCE_PAUSE))
    return pieces


def _split_long(sentence: str, max_chars: int) -> list[str]:
    clauses = [c for c in CLAUSE_END.split(sentence) if c.strip()]
    parts: list[str] = []
    for clause in clauses:
        words = clause.split(" ") if " " in clause.strip() else [clause[i:i + max_chars] for i in range(0, len(clause), max_chars)]
        parts.extend(_greedy(words, max_chars, " " if " " in clause.strip() else ""))
    return _greedy(parts, max_chars, " ")


def _greedy(words: list[str], max_chars: int, joiner: str) -> list[str]:
    out: list[str] = []
    for word in (w.strip() for w in words):
        if not word:
            continue
        if out and len(out[-1]) + len(joiner) + len(word) <= max_chars:
            out[-1] = out[-1] + joiner + word
        else:
            out.extend(word[i:i + max_chars] for i in range(0, len(word), max_chars))
    return out


def _pack(pieces: list[TextChunk], max_chars: int, first_alone: bool) -> list[TextChunk]:
    packed: list[TextChunk] = []
    for piece in pieces:
        can_join = packed and not (first_alone and len(packed) == 1) and packed[-1].pause_after >= SENTENCE_PAUSE
        if can_join and len(packed[-1].text) + 1 + len(piece.text) <= max_chars:
            packed[-1] = TextChunk(packed[-1].text + " " + piece.text, piece.pause_after)
        else:
            packed.append(piece)
    return packed
