"""What the studio does with text before the model sees it: clean-up, sentences, chunks."""

from .segment import (CLAUSE_PAUSE, DEFAULT_LANGUAGE, PARAGRAPH_PAUSE, SENTENCE_PAUSE, Sentence, TextChunk,
                      check_speakable, finished_sentences, has_words, normalize, phrases, sentence_chunks, split)

__all__ = ["CLAUSE_PAUSE", "DEFAULT_LANGUAGE", "PARAGRAPH_PAUSE", "SENTENCE_PAUSE", "Sentence", "TextChunk",
           "check_speakable", "finished_sentences", "has_words", "normalize", "phrases", "sentence_chunks", "split"]
