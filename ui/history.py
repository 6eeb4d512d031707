"""This browser session's takes: what was said, by whom, with which settings and seed, and the files."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Take:
    number: int
    text: str
    voice: str
    voice_id: str | None
    reference: str | None
    values: dict = field(default_factory=dict)
    player_path: str = ""
    download_path: str = ""

    def label(self) -> str:
        snippet = self.text if len(self.text) <= 40 else self.text[:39] + "…"
        return f"#{self.number} · seed {self.values.get('seed')} · {snippet}"

    def details(self) -> str:
        settings = ", ".join(f"{k} {v}" for k, v in self.values.items() if v not in (None, ""))
        return f"**Take #{self.number}** — {self.voice}\n\n> {self.text}\n\n{settings}"


MAX_TAKES = 50


def add(history: list[Take], take: Take) -> list[Take]:
    """The history with `take` appended, keeping the newest MAX_TAKES."""
    return [*history, take][-MAX_TAKES:]


def choices(history: list[Take]) -> list[tuple[str, int]]:
    """Dropdown choices, newest first."""
    return [(t.label(), t.number) for t in reversed(history)]


def find(history: list[Take], number: int | None) -> Take | None:
    return next((t for t in history if t.number == number), None)
