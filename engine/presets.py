"""Presets: named sets of synthesis parameters, one `<name>.json` file each holding a flat dict."""

from __future__ import annotations

import json
import re
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
