"""Reading phrase lists: plain text (one phrase a line), or CSV/TSV with a named text column."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from engine import InvalidRequest


@dataclass
class PhraseList:
    phrases: list[str]
    blank: int = 0
    duplicates: list[str] = field(default_factory=list)


def read_phrases(path: Path, column: str = "text") -> PhraseList:
    """Phrases in file order, blanks and repeats skipped (and counted); text kept exactly as written."""
    try:
        raw = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{path} is not UTF-8 text; save it as UTF-8 and try again.", "phrases") from None
    except OSError as error:
        raise InvalidRequest(f"Cannot read the phrase file {path}: {error.strerror}.", "phrases") from None
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = csv.DictReader(raw.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        if column not in (rows.fieldnames or []):
            raise InvalidRequest(f"{path} has no '{column}' column (it has {', '.join(rows.fieldnames or [])}); "
                                 f"name the text column with --column.", "phrases")
        lines = [row[column] or "" for row in rows]
    else:
        lines = raw.splitlines()
    result = PhraseList([])
    seen = set()
    for line in lines:
        phrase = " ".join(line.split())
        if not phrase:
            result.blank += 1
        elif phrase in seen:
            result.duplicates.append(phrase)
        else:
            seen.add(phrase)
            result.phrases.append(phrase)
    if not result.phrases:
        raise InvalidRequest(f"{path} holds no phrases; put one phrase on each line.", "phrases")
    return result
