"""Named sets of synthesis parameters, one JSON file each in this folder (narration.json, calm.json, ...)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from engine import NotFound

DIRECTORY = Path(__file__).resolve().parent
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def names(directory: Path = DIRECTORY) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json"))


def load(name: str, directory: Path = DIRECTORY) -> dict:
    """The parameter values of preset `name`; NotFound for a name that is not a preset file here."""
    path = directory / f"{name}.json"
    if not _NAME.match(name) or not path.is_file():
        raise NotFound(f"There is no preset '{name}'; choose one of {', '.join(names(directory))}.", "preset")
    return json.loads(path.read_text(encoding="utf-8"))
