"""Measure sentence segmenters on tricky English and on the 23 languages of the multilingual model.

    .venv/bin/python -m bench.segmentation [--repeat N] [--wrong]

Each case is a paragraph written as its expected sentences. A segmenter gets a case right when it gives back exactly
those sentences (whitespace around them aside). "Lost" counts the characters of the cases (whitespace aside) that are
missing from what the segmenter gave back. Speed is the time to segment 10,000 characters of English in one call,
the best of --repeat runs. The old splitter is the regular expression engine/text/segment.py used before sentencex; the
studio's row is engine/text/segment.py itself (clean-up and chunking included). sentencex is a requirement of the studio; the
others are listed as not installed until `pip install pysbd pyicu-wheels`.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib.metadata
import os
import platform
import re
import time
from dataclasses import dataclass
from typing import Callable

Segmenter = Callable[[str, str], list[str]]


@dataclass(frozen=True)
class Case:
    """A paragraph in `language`, written as the sentences a reader expects, joined by one space (none in Chinese
    and Japanese)."""

    language: str
    sentences: tuple[str, ...]

    @property
    def separator(self) -> str:
        return "" if self.language in ("ja", "zh") else " "

    @property
    def text(self) -> str:
        return self.separator.join(self.sentences)


def _en(*sentences: str) -> Case:
    return Case("en", sentences)


ENGLISH_CASES: tuple[Case, ...] = (
    _en("Mrs. Patel met Dr. Okafor at noon.", "They talked for an hour."),
    _en("Prof. Lindqvist and Sen. Harper disagreed.", "Nobody was surprised."),
    _en("The meeting ran until 5 p.m.", "We left right after."),
    _en("The train leaves at 6 a.m. sharp and arrives by noon."),
    _en("She was born in the U.S. but moved to the E.U. in 2019.", "Her sister stayed."),
    _en("He works for the U.N.", "The pay is good."),
    _en("J. R. R. Tolkien wrote it.", "C. S. Lewis read the drafts."),
    _en("The letter was signed by George W. Bush.", "It arrived late."),
    _en("His grade was an A.", "He was pleased."),
    _en("The rate rose to 4.75 percent.", "Analysts expected 4.5."),
    _en("Tickets cost $12.50 each, or £40.00 for a family.", "Children under 5 go free."),
    _en("Version 2.1.3 fixes the bug.", "Upgrade today."),
    _en("Temperatures ranged from -3.5 to 10.2 degrees.", "It rained all week."),
    _en("Bring something warm, e.g. a jacket or a scarf.", "It gets cold at night."),
    _en("Use a plain layout, i.e. no tables.", "Thanks for your help."),
    _en("We packed tents, stoves, maps, etc. and drove north.", "The trip took six hours."),
    _en("1. Preheat the oven.", "2. Mix the flour and eggs.", "3. Bake for twenty minutes."),
    _en("See item No. 7 in the list.", "It is marked in red."),
    _en("St. Louis lies on the Mississippi.", "It is in Missouri."),
    _en("On Jan. 5 the office closed.", "It reopened on Feb. 2."),
    _en("She earned her Ph.D. in Boston.", "Then she taught in Lisbon."),
    _en("Vol. 3, ch. 7 covers it.", "Read it twice."),
    _en('He said, "Wait here."', "Then he left."),
    _en('The sign read: "Closed."', "We turned back."),
    _en('"Is it raining?" she asked.', "Nobody answered."),
    _en("“Stop!” he shouted.", "The car stopped."),
    _en("'Go home,' she said.", "'Now.'"),
    _en("The river (about 40 km long) feeds the lake.", "Fish are plentiful."),
    _en("We waited.", "(The bus was late again.)", "Then it came."),
    _en("The report [see p. 12] was clear.", "Nobody read it."),
    _en("I thought about it... and said yes.", "She smiled."),
    _en("Wait…", "What was that?", "Nothing."),
    _en("She paused. . . .", "Then she went on."),
    _en("Write to help@example.com for details.", "We answer within a day."),
    _en("The guide lives at https://example.org/docs/v2.html today.", "Read it first."),
    _en("Visit www.example.com.", "It has everything."),
    _en("Really?!", "You won?", "Amazing!"),
    _en("Why not?", "Because I said so."),
    _en("Lunch is at 12:30.", "Dinner is at 7."),
    _en("It was late — very late.", "We slept."),
    _en("This one has no final stop"),
)

LANGUAGE_CASES: tuple[Case, ...] = (
    Case("ar", ("ذهب أحمد إلى السوق في الساعة 9.30 صباحاً.", "اشترى خبزاً وحليباً.", "هل تريد شيئاً آخر؟",
                "سأعود قريباً!")),
    Case("da", ("Hr. Jensen kom kl. 10 i morges.", "Han havde travlt.", "Ved du, hvor han gik hen?")),
    Case("de", ("Dr. Müller kam um 8 Uhr, d.h. früher als sonst.", "Er trank z. B. einen Kaffee.",
                "Danach ging er nach Hause.")),
    Case("el", ("Ο κ. Παπαδόπουλος έφτασε στις 9.", "Τι ώρα φεύγεις;", "Θα σε περιμένω.")),
    Case("en", ("Hello there.", "How are you today?", "I'm fine, thanks!")),
    Case("es", ("El Sr. García llegó a las 10.", "¿Vienes con nosotros?", "¡Qué sorpresa!",
                "Nos vemos en EE. UU. el próximo año.")),
    Case("fi", ("Tapasin Virtasen eilen.", "Hän asuu Helsingissä, esim. Kalliossa.", "Tuletko huomenna?")),
    Case("fr", ("M. Dupont est arrivé hier soir.", "Il pleuvait beaucoup !", "Pourquoi est-il venu ?",
                "Personne ne le sait.")),
    Case("he", ("שלום, מה שלומך?", "אני בסדר.", "נתראה מחר בשעה 10.30 בבוקר.")),
    Case("hi", ("मैं कल दिल्ली गया।", "वहाँ बहुत भीड़ थी।", "क्या तुम भी आओगे?", "डॉ. शर्मा भी आएंगे।")),
    Case("it", ("Il sig. Rossi è arrivato alle 9.", "Ha portato i documenti.", "Vuoi un caffè?", "Sì, grazie!")),
    Case("ja", ("今日は雨です。", "彼は「すぐ行く。」と言った。", "傘を持っていますか？", "はい、持っています！")),
    Case("ko", ("안녕하세요.", "오늘 날씨가 좋네요!", "점심 먹었어요?", "저는 3.5시간 동안 일했어요.")),
    Case("ms", ("Encik Ahmad tiba pada pukul 9.30 pagi.", "Dia membawa buku.", "Adakah anda mahu ikut?",
                "Dr. Siti juga datang.")),
    Case("nl", ("Dhr. Jansen komt om 10 uur.", "Hij neemt bijv. koffie mee.", "Ben jij er ook?")),
    Case("no", ("Jeg bor i Oslo.", "Har du vært der?", "Det koster ca. 200 kr. per natt.", "Det er dyrt!")),
    Case("pl", ("Prof. Nowak przyjechał o godz. 9.", "Czy masz czas?", "Tak, mam np. godzinę.")),
    Case("pt", ("O Sr. Silva chegou às 10h.", "Você vem conosco?", "Que surpresa!", "Custa R$ 12,50.")),
    Case("ru", ("Проф. Иванов приехал вчера.", "Он привёз книги, т. е. учебники.", "Вы придёте завтра?",
                "Да, конечно!")),
    Case("sv", ("Dr. Andersson kom kl. 9 i morse.", "Han hade bl.a. med sig kaffe.", "Kommer du också?")),
    Case("sw", ("Habari za asubuhi.", "Bw. Juma amefika saa tatu.", "Unakuja leo?", "Karibu sana!")),
    Case("tr", ("Dr. Yılmaz saat 9'da geldi.", "Yanında kitaplar vardı.", "Sen de gelecek misin?", "Tabii ki!")),
    Case("zh", ("今天天气很好。", "他说：“我马上来。”", "你想去吗？", "价格是3.5元。")),
)

OLD_SENTENCE_END = re.compile(r"(?<=[.!?。！？…])[\"'”’)\]]*\s+|(?<=[。！？])")


def old_regex(paragraph: str, language: str) -> list[str]:
    """The splitter engine/text/segment.py used before: a regular expression, the same for every language."""
    return [s for s in OLD_SENTENCE_END.split(paragraph) if s.strip()]


@functools.cache
def _pysbd_segmenter(language: str):
    import pysbd
    from pysbd.languages import LANGUAGE_CODES

    return pysbd.Segmenter(language=language if language in LANGUAGE_CODES else "en", clean=False)


def with_pysbd(paragraph: str, language: str) -> list[str]:
    """pysbd's rules for `language`; English's for the languages it lacks."""
    return _pysbd_segmenter(language).segment(paragraph)


def with_sentencex(paragraph: str, language: str) -> list[str]:
    import sentencex

    return list(sentencex.segment(language, paragraph))


def studio(paragraph: str, language: str) -> list[str]:
    """What engine/text/segment.py makes of it: sentencex, less the cuts its own rules find inside a sentence."""
    from engine.text import split

    return [sentence.text for chunk in split(paragraph, len(paragraph), language) for sentence in chunk.sentences]


def with_icu(paragraph: str, language: str) -> list[str]:
    """ICU's sentence break iterator with CLDR's abbreviation suppressions (offsets are UTF-16 units)."""
    import icu

    breaker = icu.BreakIterator.createSentenceInstance(icu.Locale(f"{language}@ss=standard"))
    breaker.setText(paragraph)
    units = paragraph.encode("utf-16-le")
    edges = [0, *breaker]
    return [units[2 * a:2 * b].decode("utf-16-le") for a, b in zip(edges, edges[1:])]


# Label (with the version installed), the packages that provide it (any one), and the segmenter.
CANDIDATES: dict[str, tuple[tuple[str, ...], Segmenter]] = {
    "old regex splitter": ((), old_regex),
    "pysbd {version}": (("pysbd",), with_pysbd),
    "sentencex {version}": (("sentencex",), with_sentencex),
    "ICU (PyICU {version})": (("PyICU", "pyicu-wheels", "pyicu-binary"), with_icu),
    "studio: sentencex {version} + its own rules": (("sentencex",), studio),
}


@dataclass(frozen=True)
class Score:
    right: int
    cases: int
    lost: int
    wrong: tuple[Case, ...]


def sentences_found(segment: Segmenter, case: Case) -> tuple[str, ...]:
    return tuple(s.strip() for s in segment(case.text, case.language) if s.strip())


def characters_lost(case: Case, found: tuple[str, ...]) -> int:
    """How many of the case's characters (whitespace aside) are not in what the segmenter gave back."""
    expected, got = "".join(case.text.split()), "".join("".join(found).split())
    matcher = difflib.SequenceMatcher(None, expected, got, autojunk=False)
    return len(expected) - sum(block.size for block in matcher.get_matching_blocks())


def score(segment: Segmenter, cases: tuple[Case, ...]) -> Score:
    found = [sentences_found(segment, case) for case in cases]
    wrong = tuple(case for case, got in zip(cases, found) if got != case.sentences)
    lost = sum(characters_lost(case, got) for case, got in zip(cases, found))
    return Score(len(cases) - len(wrong), len(cases), lost, wrong)


def ms_per_10k_chars(segment: Segmenter, repeat: int) -> float:
    """Milliseconds to segment 10,000 characters of English in one call, the best of `repeat` runs."""
    text = " ".join(case.text for case in ENGLISH_CASES)
    text = " ".join([text] * (10_000 // len(text) + 1))[:10_000]
    segment(text, "en")
    best = min(_seconds(segment, text) for _ in range(repeat))
    return best * 1000


def _seconds(segment: Segmenter, text: str) -> float:
    start = time.perf_counter()
    segment(text, "en")
    return time.perf_counter() - start


def installed(packages: tuple[str, ...]) -> str | None:
    """The installed version of the first of `packages` there is ("" when none is needed), or None when missing."""
    for package in packages:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None if packages else ""


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if platform.system() == "Linux" else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(repeat: int, show_wrong: bool) -> None:
    languages = sorted({case.language for case in LANGUAGE_CASES})
    print(f"{len(ENGLISH_CASES)} English cases, {len(LANGUAGE_CASES)} paragraphs in {len(languages)} languages; "
          f"{machine()}\n")
    print("| segmenter | English right | 23 languages right | characters lost | ms per 10k chars |")
    print("| --- | --- | --- | --- | --- |")
    for name, (packages, segment) in CANDIDATES.items():
        version = installed(packages)
        if version is None:
            print(f"| {name.replace(' {version}', '')} | not installed | | | |")
            continue
        english, other = score(segment, ENGLISH_CASES), score(segment, LANGUAGE_CASES)
        print(f"| {name.format(version=version)} | {english.right}/{english.cases} | {other.right}/{other.cases} | "
              f"{english.lost + other.lost} | {ms_per_10k_chars(segment, repeat):.1f} |")
        if show_wrong:
            for case in english.wrong + other.wrong:
                print(f"    {case.language}: {sentences_found(segment, case)}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.segmentation", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per segmenter (the best counts)")
    parser.add_argument("--wrong", action="store_true", help="print what each segmenter gave for the cases it missed")
    args = parser.parse_args()
    report(args.repeat, args.wrong)


if __name__ == "__main__":
    main()
