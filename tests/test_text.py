"""Text clean-up and chunking."""

import pytest

from engine import InvalidRequest
from engine.text import PARAGRAPH_PAUSE, normalize, phrases, split


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


@pytest.mark.parametrize("text", ["", "   \n  ", "...!?", "🙂🎉", "\x00\x01"])
def test_text_with_nothing_to_say_is_refused(text):
    with pytest.raises(InvalidRequest) as error:
        split(text)
    assert "text" in error.value.message


def test_separate_phrases_are_one_chunk_each_with_no_pause():
    chunks = phrases("First phrase. It has two sentences.\n\nSecond one!\n\nThird?")
    assert [(c.text, c.pause_after) for c in chunks] == [
        ("First phrase. It has two sentences.", 0.0), ("Second one!", 0.0), ("Third?", 0.0)]


@pytest.mark.parametrize("text, words", [("Fine.\n\n...", "Phrase 2 has no letters"),
                                         ("Fine.\n\n" + "word " * 60, "Phrase 2 is 299 characters")])
def test_a_phrase_that_cannot_be_one_chunk_is_refused_by_number(text, words):
    with pytest.raises(InvalidRequest, match=words):
        phrases(text)
