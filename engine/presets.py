"""Presets: named sets of synthesis parameters, one `<name>.json` file each holding a flat dict. The studio ships
some (`presets/`); a person's own are saved beside their voices (`<data dir>/presets/`), not among the program's
files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidRequest, NotFound
from .request import PARAMETER_RANGES

PRESET_KEYS = (*PARAMETER_RANGES, "seed", "language", "model")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def list_presets(directory: Path) -> list[str]:
    """The preset names in `directory`, sorted."""
    return sorted(p.stem for p in Path(directory).glob("*.json") if _NAME.match(p.stem))


def load_preset(directory: Path, name: str) -> dict:
    """The parameter values of preset `name`, only the keys a SynthesisRequest knows."""
    path = Path(directory) / f"{name}.json"
    if not isinstance(name, str) or not _NAME.match(name) or not path.is_file():
        raise NotFound(f"There is no preset '{name}'; choose one of {', '.join(list_presets(directory))}.", "preset")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise InvalidRequest(f"The preset file {path.name} is not valid JSON.", "preset") from None
    if not isinstance(values, dict):
        raise InvalidRequest(f"The preset file {path.name} must hold a JSON object.", "preset")
    return {k: v for k, v in values.items() if k in PRESET_KEYS}


def preset_name(name: str) -> str:
    """A file-safe preset name from what a user typed ("My Calm Voice" -> "my-calm-voice")."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", (name or "").strip().lower()).strip("-_")[:64]
    if not cleaned:
        raise InvalidRequest("Give the preset a name with letters or digits.", "preset")
    return cleaned


def save_preset(directory: Path, name: str, values: dict) -> str:
    """Write `values` (request parameter names only) as preset `name`; returns the file-safe name used."""
    unknown = sorted(set(values) - set(PRESET_KEYS))
    if unknown:
        raise InvalidRequest(f"Presets hold only {', '.join(PRESET_KEYS)}; not {', '.join(unknown)}.", "preset")
    safe = preset_name(name)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{safe}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(values) + "\n", encoding="utf-8")
    tmp.replace(path)
    return safe


@dataclass(frozen=True)
class PresetShelf:
    """The shipped presets and a person's own: theirs are saved in `own` and win over a shipped one of the same
    name."""

    own: Path
    shipped: Path

    def names(self) -> list[str]:
        return sorted(set(list_presets(self.own)) | set(list_presets(self.shipped)))

    def load(self, name: str) -> dict:
        if isinstance(name, str) and _NAME.match(name) and (Path(self.own) / f"{name}.json").is_file():
            return load_preset(self.own, name)
        try:
            return load_preset(self.shipped, name)
        except NotFound:
            raise NotFound(f"There is no preset '{name}'; choose one of {', '.join(self.names())}.", "preset") from None

    def save(self, name: str, values: dict) -> str:
        return save_preset(self.own, name, values)
