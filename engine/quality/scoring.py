"""How far a transcript is from the text it should say: the character error rate after one normalization.

Both texts are normalized the same way before they are compared:
1. Unicode NFKC, then case folded (`Straße` and `STRASSE` agree);
2. in English (and when no language is given), numbers written in digits are spelled out (`21` as `twenty one`,
   `3.5` as `three point five`, `1,000` as `one thousand`), `%` is `percent` and `&` is `and`, since a recognizer
   writes either form; other languages keep their digits, so write numbers the way the recognizer will (as words);
3. apostrophes are dropped (`don't` and `dont` agree); every other punctuation mark or symbol becomes a space;
4. runs of white space become one space.
The score is the edit distance (insertions, deletions, substitutions of characters) between the two, divided by the
length of the expected text: 0 is a perfect take; a mumbled word costs its letters; it can pass 1 when the take
says much more than the text.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_NUMBER = re.compile(r"\d+(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?")
_APOSTROPHES = "'\u2019\u02bc"


def spell_english(number: int) -> str:
    """A whole number in English words: 1984 as 'one thousand nine hundred eighty four'."""
    if number < 20:
        return _ONES[number]
    if number < 100:
        return _TENS[number // 10] + ("" if number % 10 == 0 else " " + _ONES[number % 10])
    for scale, name in _SCALES:
        if number >= scale:
            rest = number % scale
            return f"{spell_english(number // scale)} {name}" + ("" if rest == 0 else " " + spell_english(rest))
    raise AssertionError("unreachable")


def _spell_match(match: re.Match) -> str:
    whole, _, fraction = match.group().replace(",", "").partition(".")
    words = spell_english(int(whole))
    if fraction:
        words += " point " + " ".join(_ONES[int(digit)] for digit in fraction)
    return f" {words} "


def normalize(text: str, language: str | None = None) -> str:
    """`text` as it is compared (see the module's documentation)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if (language or "en") == "en":
        text = _NUMBER.sub(_spell_match, text.replace("%", " percent ").replace("&", " and "))
    text = "".join("" if ch in _APOSTROPHES else " " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings, in characters."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def character_error_rate(expected: str, heard: str, language: str | None = None) -> float:
    """The edits that turn what was heard into what was expected, per expected character, both normalized."""
    want, got = normalize(expected, language), normalize(heard, language)
    return edit_distance(want, got) / max(1, len(want))
