"""Text preparation: clean up what users paste, find its sentences, and pack them into chunks the model handles well.

Sentences come from sentencex (rules for about 300 languages), in the request's language. The chunks never drop or
change a character of the cleaned-up text (see `normalize` for the only changes the studio makes): each chunk's text
is a stretch of it, and the chunks' texts with the whitespace between them (`TextChunk.gap`) give it back whole.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

import sentencex

from ..errors import InvalidRequest
from . import tags

LINE_END = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
PARAGRAPH_END = re.compile(r"\n\s*\n\s*$")
CLAUSE_END = re.compile(r"[,;:،؛][\"'”’»)\]]*\s|—\s?|[，、；：]")
LIST_NUMBER_OR_SHORT_ABBREVIATION = re.compile(r"\(?(?:\d{1,3}|[^\W\d_][^\s\d.]?)[.)]")
LOWERCASE_ABBREVIATION_END = re.compile(r"(?:^|\s)((?:[^\W\d_]{1,4}\.)+)$")

SENTENCE_PAUSE = 0.3
PARAGRAPH_PAUSE = 0.6
CLAUSE_PAUSE = 0.15
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Sentence:
    """A sentence, or a part of a long one cut at a clause or between words; the whitespace that follows it in the
    text ("", " " or a paragraph break), and the silence that follows it where a chunk ends with it."""

    text: str
    gap: str
    pause_after: float
    tagged_pause: bool = False  # the pause after it was written as a [pause:…] tag: a chunk always ends here


@dataclass(frozen=True)
class TextChunk:
    """One piece of text for one model call: the sentences it is made of, in the text's order. Only the first chunk
    of a text that starts with pause tags has a `lead`: those tags as written, and the silence they ask for."""

    sentences: tuple[Sentence, ...]
    lead: str = ""
    pause_before: float = 0.0

    @property
    def text(self) -> str:
        """What the model speaks: the sentences as they stand in the text."""
        return "".join(s.text + s.gap for s in self.sentences[:-1]) + self.sentences[-1].text

    @property
    def gap(self) -> str:
        """The whitespace between this chunk and the next in the text."""
        return self.sentences[-1].gap

    @property
    def pause_after(self) -> float:
        """The silence after this chunk: a clause's, a sentence's or a paragraph's, none after the last."""
        return self.sentences[-1].pause_after


def normalize(text: str) -> str:
    """The text with the only clean-up the studio does before speaking it:

    - Unicode format characters (category Cf: zero-width spaces and joiners, soft hyphens, direction marks, byte
      order marks) are removed; other control characters, lone surrogates, private-use and unassigned code points
      become spaces;
    - a blank line (two line ends, any of \\r\\n, \\r, \\n, \\v, \\f, U+001C to U+001E, U+0085, U+2028, U+2029, with
      only whitespace between) is a paragraph break, written as exactly one blank line; empty paragraphs are dropped,
      and the text starts and ends with no whitespace;
    - inside a paragraph, every run of whitespace (line ends and tabs too) becomes one space, and none starts or
      ends a paragraph;
    - last, Unicode NFC (a letter and its accent as one code point, where Unicode has one).
    """
    text = "".join(_cleaned_character(ch) for ch in LINE_END.sub("\n", text))
    paragraphs = [" ".join(paragraph.split()) for paragraph in PARAGRAPH_BREAK.split(text)]
    return unicodedata.normalize("NFC", "\n\n".join(p for p in paragraphs if p))


def _cleaned_character(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""
    return " " if category[0] == "C" and ch != "\n" else ch


def has_words(text: str) -> bool:
    """Whether `text` holds any letter or digit to speak, outside tags."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in tags.without_tags(text))


def check_speakable(text: str) -> None:
    """Refuse text that has nothing to say, with a message that says so."""
    if not text.strip():
        raise InvalidRequest("The text is empty; type something to say.", "input")
    if not has_words(text):
        raise InvalidRequest(
            "The text has no letters or digits to speak (only punctuation, symbols, emoji or tags); type some words.",
            "input",
        )


def split(text: str, max_chars: int = 250, language: str | None = None) -> list[TextChunk]:
    """The cleaned-up text as chunks of whole sentences, at most `max_chars` each, never across a paragraph break.

    A sentence longer than a chunk is cut after a clause, else between words, else (text without spaces) anywhere
    but inside a letter and its marks. The first sentence is a chunk of its own, so streamed audio can start early.
    A run with no letter or digit (`* * *`, an emoji) goes with the sentence before it (the first one: after it),
    even past `max_chars`, so that every chunk has words to speak. A pause tag always ends a chunk (see tags.py).
    """
    lead, pieces = _pieces(text, max_chars, language)
    return _with_lead(lead, _pack(pieces, max_chars))


def sentence_chunks(text: str, max_chars: int = 250, language: str | None = None) -> list[TextChunk]:
    """Each sentence (a long one cut as `split` cuts it) as a chunk of its own, so that each has audio of its own to
    time a caption by."""
    lead, pieces = _pieces(text, max_chars, language)
    return _with_lead(lead, [TextChunk((piece,)) for piece in pieces])


def phrases(text: str, max_chars: int = 250, language: str | None = None) -> list[TextChunk]:
    """Each paragraph as one chunk with no pause after it, for texts whose paragraphs are separate utterances."""
    text = normalize(text)
    check_speakable(text)
    if tags.has_pause_tag(text):
        raise InvalidRequest("A phrase is spoken whole, with no pause inside it: take the [pause:…] tags out of the "
                             "phrases.", "input")
    paragraphs = text.split("\n\n")
    chunks = [TextChunk(_paragraph_sentences(paragraph, language, _gap_after(number, paragraphs), 0.0))
              for number, paragraph in enumerate(paragraphs, 1)]
    for number, chunk in enumerate(chunks, 1):
        if not has_words(chunk.text):
            raise InvalidRequest(f"Phrase {number} has no letters or digits to speak; remove it or add words.", "input")
        if len(chunk.text) > max_chars:
            raise InvalidRequest(f"Phrase {number} is {len(chunk.text)} characters; a phrase may have at most "
                                 f"{max_chars}. Split it, or send it as a text of its own.", "input")
    return chunks


def finished_sentences(text: str, language: str | None = None) -> tuple[list[str], str]:
    """For text still arriving in pieces: its sentences that are surely whole (another sentence, or a paragraph
    break, follows them), cleaned up, each with the pause tags after it, and the rest, to which the next piece is
    added. Runs with no letter or digit are dropped; there is nothing in them to speak."""
    cleaned = normalize(text)
    if not cleaned:
        return [], text
    sentences = [(sentence.text + sentence.gap).strip() for sentence in _sentences(cleaned, language)]  # tags too
    if PARAGRAPH_END.search(LINE_END.sub("\n", text)):
        done, rest = sentences, ""
    else:
        done, rest = sentences[:-1], sentences[-1] + (" " if text[-1].isspace() else "")
    return [sentence for sentence in done if has_words(sentence)], rest


def _pieces(text: str, max_chars: int, language: str | None) -> tuple[Sentence | None, list[Sentence]]:
    """The cleaned-up text's pause tags before its first words, if any, as a piece with no text; and its sentences,
    cut to fit `max_chars`, each with words to speak."""
    text = normalize(text)
    check_speakable(text)
    sentences = [part for sentence in _sentences(text, language) for part in _cut_long(sentence, max_chars)]
    pieces = _with_words(sentences)
    if pieces and not has_words(pieces[0].text):  # only punctuation before the first pause tag
        return pieces[0], pieces[1:]
    return None, pieces


def _with_lead(lead: Sentence | None, chunks: list[TextChunk]) -> list[TextChunk]:
    """The chunks, the first one with the text's leading pause tags and their silence."""
    if lead is None:
        return chunks
    return [replace(chunks[0], lead=lead.text + lead.gap, pause_before=lead.pause_after), *chunks[1:]]


def _sentences(text: str, language: str | None) -> list[Sentence]:
    """The sentences of cleaned-up text, paragraph by paragraph; a paragraph's last one has the paragraph pause,
    the text's last one none, and one before pause tags the silence they ask for, those tags in its gap. Tags before
    the text's first words are a first sentence with no text."""
    paragraphs = text.split("\n\n")
    sentences: list[Sentence] = []
    for number, paragraph in enumerate(paragraphs, 1):
        for stretch in tags.stretches(paragraph):
            tagged = stretch.pause is not None
            if stretch.text:
                sentences.extend(_paragraph_sentences(stretch.text, language, stretch.after,
                                                      stretch.pause if tagged else SENTENCE_PAUSE, tagged))
            elif sentences:
                sentences[-1] = _followed_by(sentences[-1], stretch.after, stretch.pause)
            else:
                sentences.append(Sentence("", stretch.after, stretch.pause, True))
        last = sentences[-1]
        pause = last.pause_after if last.tagged_pause else 0.0 if number == len(paragraphs) else PARAGRAPH_PAUSE
        sentences[-1] = replace(last, gap=last.gap + _gap_after(number, paragraphs), pause_after=pause)
    return sentences


def _followed_by(sentence: Sentence, text: str, pause: float) -> Sentence:
    """The sentence with unspoken text (pause tags, or a run with no words between them) added to its gap, and the
    silence of its tags: it replaces the sentence's own pause, or adds to a pause already asked for."""
    before = sentence.pause_after if sentence.tagged_pause else 0.0
    return Sentence(sentence.text, sentence.gap + text, before + pause, True)


def _gap_after(number: int, paragraphs: list[str]) -> str:
    return "" if number == len(paragraphs) else "\n\n"


def _paragraph_sentences(paragraph: str, language: str | None, gap: str, pause: float,
                         tagged_pause: bool = False) -> tuple[Sentence, ...]:
    """The paragraph's sentences as sentencex finds them, less the cuts it makes inside one (`_continues`); the last
    one followed by `gap` and `pause`."""
    sentences: list[Sentence] = []
    for sentence in _library_sentences(paragraph, language):
        if sentences and _continues(sentences[-1], sentence):
            sentences[-1] = _joined(sentences[-1], sentence)
        else:
            sentences.append(sentence)
    sentences[-1] = replace(sentences[-1], gap=gap, pause_after=pause, tagged_pause=tagged_pause)
    return tuple(sentences)


def _library_sentences(paragraph: str, language: str | None) -> list[Sentence]:
    """The paragraph cut where sentencex ends a sentence; the whitespace at a cut goes with the sentence before."""
    code = (language or DEFAULT_LANGUAGE).lower()
    cuts = {_past_whitespace(paragraph, b["end_index"]) for b in sentencex.get_sentence_boundaries(code, paragraph)}
    edges = sorted({0, len(paragraph)} | {cut for cut in cuts if 0 < cut < len(paragraph)})
    pieces = [paragraph[start:end] for start, end in zip(edges, edges[1:])]
    return [Sentence(piece.rstrip(), piece[len(piece.rstrip()):], SENTENCE_PAUSE) for piece in pieces]


def _past_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


def _continues(before: Sentence, after: Sentence) -> bool:
    """Whether a cut between two pieces falls inside one sentence: after a list number or a one- or two-letter
    abbreviation standing alone (`1.`, `a)`, `Dr.` before a name sentencex takes for a new sentence), or before a
    lowercase word or a number (not a list number) after a short lowercase abbreviation (`ca. 200 kr. per natt`,
    `т. е. учебники`)."""
    if _is_label(before):
        return True
    abbreviation = LOWERCASE_ABBREVIATION_END.search(before.text)
    first = after.text[:1]
    continued = first.islower() or (first.isdigit() and not _is_label(after))
    return bool(abbreviation) and abbreviation.group(1).islower() and continued


def _is_label(sentence: Sentence) -> bool:
    """Whether the piece is only a list number or a one- or two-letter abbreviation: `1.`, `a)`, `Dr.`, `M.`."""
    return bool(LIST_NUMBER_OR_SHORT_ABBREVIATION.fullmatch(sentence.text))


def _joined(first: Sentence, second: Sentence) -> Sentence:
    """Two neighbouring pieces of text as one, with the whitespace that was between them."""
    return Sentence(first.text + first.gap + second.text, second.gap, second.pause_after, second.tagged_pause)


def _cut_long(sentence: Sentence, max_chars: int) -> list[Sentence]:
    """A sentence longer than `max_chars` as parts that fit, each but the last followed by a clause's pause."""
    parts: list[Sentence] = []
    rest = sentence.text
    while len(rest) > max_chars:
        cut = _past_whitespace(rest, _cut_point(rest, max_chars))
        part = rest[:cut].rstrip()
        parts.append(Sentence(part, rest[len(part):cut], CLAUSE_PAUSE))
        rest = rest[cut:]
    parts.append(replace(sentence, text=rest))
    return parts


def _cut_point(text: str, max_chars: int) -> int:
    """Where to cut `text` so the part before has at most `max_chars` characters: after the last clause that fits,
    else after the last space that fits, else at `max_chars`, moved back to keep a letter with its marks."""
    head = text[:max_chars + 1]
    clause_ends = [m.end() for m in CLAUSE_END.finditer(head) if 0 < len(head[:m.end()].rstrip()) <= max_chars]
    if clause_ends:
        return clause_ends[-1]
    space = head.rfind(" ")
    if space > 0:
        return space + 1
    cut = max_chars
    while cut > 1 and unicodedata.category(text[cut])[0] == "M":
        cut -= 1
    return cut


def _with_words(pieces: list[Sentence]) -> list[Sentence]:
    """The pieces, each one without a letter or digit joined to the piece before it (the first: to the one after),
    but never across a pause tag: after one, a piece with no words goes into the gap with the tag."""
    joined: list[Sentence] = []
    for piece in pieces:
        if joined and joined[-1].tagged_pause and not has_words(piece.text):
            joined[-1] = _followed_by(joined[-1], piece.text + piece.gap, piece.pause_after if piece.tagged_pause else 0)
        elif joined and not joined[-1].tagged_pause and (not has_words(piece.text)
                                                         or not has_words(joined[-1].text)):
            joined[-1] = _joined(joined[-1], piece)
        else:
            joined.append(piece)
    return joined


def _pack(pieces: list[Sentence], max_chars: int) -> list[TextChunk]:
    """Pieces packed in order into chunks of at most `max_chars`: a piece joins the chunk before when that chunk ends
    a sentence inside a paragraph and is not the first chunk, and the two fit."""
    chunks: list[list[Sentence]] = []
    length = 0  # of the last chunk, with the whitespace after it
    for piece in pieces:
        fits = length + len(piece.text) <= max_chars
        after = chunks[-1][-1] if chunks else None
        if len(chunks) > 1 and after.pause_after == SENTENCE_PAUSE and not after.tagged_pause and fits:
            chunks[-1].append(piece)
        else:
            chunks.append([piece])
            length = 0
        length += len(piece.text) + len(piece.gap)
    return [TextChunk(tuple(sentences)) for sentences in chunks]
