"""Text clean-up, sentences and chunking."""

import unicodedata

import pytest
from hypothesis import assume, given, settings, strategies as st

from bench.segmentation import ENGLISH_CASES, LANGUAGE_CASES, Case
from engine import LANGUAGES, InvalidRequest, SynthesisRequest
from engine.pipeline import chunk_texts
from engine.text import (CLAUSE_PAUSE, PARAGRAPH_PAUSE, SENTENCE_PAUSE, TextChunk, finished_sentences, has_words,
                         normalize, phrases, split)

# Cases the segmenter still gets wrong (bench/segmentation.py measures them): the texts still come back whole.
KNOWN_MISSES = {
    "Vol. 3, ch. 7 covers it. Read it twice.": "sentencex ends a sentence after 'Vol.'",
    "We waited. (The bus was late again.) Then it came.": "sentencex does not end a sentence after ')'",
    "Wait… What was that? Nothing.": "sentencex does not end a sentence after '…'",
    "今日は雨です。彼は「すぐ行く。」と言った。傘を持っていますか？はい、持っています！":
        "sentencex ends a sentence after '」' before the particle 'と'",
    "Prof. Nowak przyjechał o godz. 9. Czy masz czas? Tak, mam np. godzinę.":
        "'godz. 9.' reads like a sentence ending in a list number",
}


def rejoined(chunks: list[TextChunk]) -> str:
    """The text the chunks were cut from: their texts with the whitespace (and pause tags) between them."""
    return chunks[0].lead + "".join(chunk.text + chunk.gap for chunk in chunks)


def edges(chunks: list[TextChunk]) -> set[int]:
    """Where, in the rejoined text, each chunk but the last ends."""
    offsets, at = set(), 0
    for chunk in chunks[:-1]:
        at += len(chunk.text) + len(chunk.gap)
        offsets.add(at)
    return offsets


def sentence_edges(case: Case) -> set[int]:
    """Where, in the case's text, each sentence but the last ends (with the space after it)."""
    lengths = [len(sentence) + len(case.separator) for sentence in case.sentences]
    return {sum(lengths[:n]) for n in range(1, len(lengths))}


def case_id(case: Case) -> str:
    return f"{case.language}:{case.text[:40]}"


def with_known_miss(case: Case):
    """The case as a test parameter, expected to fail where the segmenter is known to miss it."""
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[case.text])] if case.text in KNOWN_MISSES else []
    return pytest.param(case, marks=marks, id=case_id(case))


def test_short_text_is_one_chunk_with_no_trailing_pause():
    chunks = split("Hello there.")
    assert [c.text for c in chunks] == ["Hello there."]
    assert chunks[-1].pause_after == 0.0


def test_first_sentence_stands_alone_then_sentences_are_packed():
    chunks = split("One. Two is here. Three is here too.", max_chars=100)
    assert [c.text for c in chunks] == ["One.", "Two is here. Three is here too."]


def test_long_text_is_split_without_losing_a_word():
    words = [f"word{i}" for i in range(700)]
    text = " ".join(words) + "."
    chunks = split(text, max_chars=250)
    assert all(len(c.text) <= 250 for c in chunks)
    assert " ".join(c.text for c in chunks).replace(".", "").split() == [w for w in words]


def test_paragraph_breaks_give_longer_pauses():
    chunks = split("First paragraph.\n\nSecond paragraph.")
    assert chunks[0].pause_after == PARAGRAPH_PAUSE


def test_text_without_spaces_is_split_too():
    chunks = split("这是一个很长的句子" * 60, max_chars=100)
    assert all(len(c.text) <= 100 for c in chunks)
    assert "".join(c.text for c in chunks) == "这是一个很长的句子" * 60


def test_normalize_removes_control_characters_and_collapses_spaces():
    assert normalize("Hi\x00 there\x07,   friend") == "Hi there , friend"


def test_normalize_keeps_paragraphs_and_drops_format_characters():
    text = "\ufeff  First\r\nline\u00ad one.\r\n \r\nSec\u200bond\tpara.\u2028\u2028\n\n\nThird.  "
    assert normalize(text) == "First line one.\n\nSecond para.\n\nThird."


def test_normalize_composes_accents():
    assert normalize("Cafe\u0301") == "Café"


@pytest.mark.parametrize("text", ["", "   \n  ", "...!?", "🙂🎉", "\x00\x01"])
def test_text_with_nothing_to_say_is_refused(text):
    with pytest.raises(InvalidRequest) as error:
        split(text)
    assert "text" in error.value.message


def test_separate_phrases_are_one_chunk_each_with_no_pause():
    chunks = phrases("First phrase. It has two sentences.\n\nSecond one!\n\nThird?")
    assert [(c.text, c.pause_after) for c in chunks] == [
        ("First phrase. It has two sentences.", 0.0), ("Second one!", 0.0), ("Third?", 0.0)]
    assert [s.text for s in chunks[0].sentences] == ["First phrase.", "It has two sentences."]


@pytest.mark.parametrize("text, words", [("Fine.\n\n...", "Phrase 2 has no letters"),
                                         ("Fine.\n\n" + "word " * 60, "Phrase 2 is 299 characters")])
def test_a_phrase_that_cannot_be_one_chunk_is_refused_by_number(text, words):
    with pytest.raises(InvalidRequest, match=words):
        phrases(text)


# What the issue found the old splitter doing wrong.

@pytest.mark.parametrize("text, expected", [
    ("Mr. Smith went to Washington. He arrived at 3 p.m.", ["Mr. Smith went to Washington.", "He arrived at 3 p.m."]),
    ('Dr. No said: "No." Then left.', ['Dr. No said: "No."', "Then left."]),
    ("It was complex. . . .” He stopped.", ["It was complex. . . .”", "He stopped."]),
    ('She wrote "[...]" (Smith 55). He agreed.', ['She wrote "[...]" (Smith 55).', "He agreed."]),
    ("1. Heat the pan. 2. Add the oil.", ["1. Heat the pan.", "2. Add the oil."]),
])
def test_no_chunk_edge_after_an_abbreviation_or_list_number_and_no_character_lost(text, expected):
    chunks = split(text)
    assert [c.text for c in chunks] == expected
    assert rejoined(chunks) == text


@pytest.mark.parametrize("case", [with_known_miss(case) for case in ENGLISH_CASES + LANGUAGE_CASES])
def test_chunk_edges_fall_between_sentences(case):
    whole = split(case.text, max_chars=len(case.text), language=case.language)
    assert [s.text for chunk in whole for s in chunk.sentences] == list(case.sentences)
    chunks = split(case.text, max_chars=max(len(s) for s in case.sentences), language=case.language)
    assert chunks[0].text == case.sentences[0]
    assert edges(chunks) <= sentence_edges(case)


@pytest.mark.parametrize("case", ENGLISH_CASES + LANGUAGE_CASES, ids=case_id)
def test_chunks_give_back_the_text_exactly(case):
    for max_chars in (250, 40, 12):
        assert rejoined(split(case.text, max_chars, case.language)) == case.text


def test_a_long_sentence_is_cut_at_a_clause_then_between_words():
    clause = "A clause of several words that goes on for quite a while"
    text = f"Short one. {clause}, {clause}; {clause} and then some more words to end it. Last one."
    chunks = split(text, max_chars=80)
    assert [c.text for c in chunks] == [
        "Short one.", f"{clause},", f"{clause};", f"{clause} and then some more", "words to end it. Last one."]
    assert [c.pause_after for c in chunks] == [SENTENCE_PAUSE, CLAUSE_PAUSE, CLAUSE_PAUSE, CLAUSE_PAUSE, 0.0]


def test_a_run_without_words_goes_with_the_sentence_before():
    chunks = split("🙂 Hello.\n\n* * *\n\nOnce upon a time. The end!!! ???", max_chars=40)
    assert [c.text for c in chunks] == ["🙂 Hello.\n\n* * *", "Once upon a time. The end!!! ???"]
    assert all(has_words(c.text) for c in chunks)


def test_the_sentence_rules_are_the_requests_language():
    text = "Ο κ. Παπαδόπουλος έφτασε. Τι ώρα φεύγεις; Θα σε περιμένω."
    greek = chunk_texts(SynthesisRequest(text, language="el"), 250)
    assert [s.text for c in greek for s in c.sentences] == [
        "Ο κ. Παπαδόπουλος έφτασε.", "Τι ώρα φεύγεις;", "Θα σε περιμένω."]
    assert len(LANGUAGE_CASES) == len(LANGUAGES) == len({case.language for case in LANGUAGE_CASES})


TRICKY = ["Mr.", "Dr.", "e.g.", "U.S.", "3.5", "1.", "a)", "word", "Word", "é", "e\u0301", "你好", "한국어", "שלום",
          "مرحبا", " ", "  ", "\n", "\n\n", "\r\n", "\t", ".", ". ", "...", "…", "!", "?", "。", "，", ",", ";", ":",
          "—", '"', "“", "”", "'", "(", ")", "[", "]", "*", "🙂", "👨\u200d👩\u200d👧", "\x00", "\x1b", "\u200b",
          "\u00ad", "\u200f", "\u2028", "\ufeff", "[pause:1s]", "[PAUSE: 250ms]", "[laugh]", "[sic]"]
ANY_TEXT = st.one_of(st.text(max_size=300), st.lists(st.sampled_from(TRICKY), max_size=120).map("".join))


@settings(max_examples=300, deadline=None)
@given(text=ANY_TEXT, max_chars=st.integers(1, 300), language=st.sampled_from(sorted(LANGUAGES) + [None]))
def test_any_text_comes_back_whole_from_its_chunks(text, max_chars, language):
    cleaned = normalize(text)
    assume(has_words(cleaned))
    chunks = split(text, max_chars, language)
    assert rejoined(chunks) == cleaned
    assert all(c.text == c.text.strip() and has_words(c.text) for c in chunks)
    assert chunks[-1].pause_after == 0.0 or chunks[-1].sentences[-1].tagged_pause
    assert len(chunks[0].sentences) == 1


@settings(max_examples=200, deadline=None)
@given(text=ANY_TEXT)
def test_normalize_is_the_documented_clean_up_and_is_stable(text):
    cleaned = normalize(text)
    assert normalize(cleaned) == cleaned
    assert cleaned == cleaned.strip() and "  " not in cleaned and "\n\n\n" not in cleaned
    assert all(ch in " \n" or not ch.isspace() for ch in cleaned)
    assert all(ch == "\n" or unicodedata.category(ch)[0] != "C" for ch in cleaned)
    assert all(paragraph == paragraph.strip() and "\n" not in paragraph for paragraph in cleaned.split("\n\n"))


WORDS = st.from_regex(r"[A-Za-zà-öø-ÿ]{1,12}[.,;!?]?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(WORDS, min_size=1, max_size=150), max_chars=st.integers(13, 300))
def test_chunks_of_words_fit_the_limit(words, max_chars):
    text = " ".join(words)
    assert all(len(chunk.text) <= max_chars for chunk in split(text, max_chars))


@pytest.mark.parametrize("arriving, finished, rest", [
    ("The first sen", [], "The first sen"),
    ("The first sentence. The sec", ["The first sentence."], "The sec"),
    ("One. Two.  Thr", ["One.", "Two."], "Thr"),
    ("Dr. Smith came. He ", ["Dr. Smith came."], "He "),  # no cut after an abbreviation; a space kept for what follows
    ("A whole sentence.", [], "A whole sentence."),  # its end is sure only once more text follows it
    ("A paragraph.\n\n", ["A paragraph."], ""),
    ("* * * Then words. And", ["* * * Then words."], "And"),
    ("Wait. [pause:1s] Now go. And", ["Wait. [pause:1s]", "Now go."], "And"),  # a pause tag stays with its sentence
    ("   ", [], "   "),
])
def test_finished_sentences_of_text_still_arriving(arriving, finished, rest):
    assert finished_sentences(arriving) == (finished, rest)
