"""What the desk suggests to a person choosing a model for their hardware. It suggests; it never switches."""

from __future__ import annotations

from engine.models import VARIANTS

DRAFT_MODELS = ("chatterbox-nano", "chatterbox-turbo")  # the quickest first: Nano is Turbo with a smaller T3


def draft_suggestion(model: str, device: str) -> str:
    """On a CPU, with a model other than Nano or Turbo chosen, a line suggesting them for quick drafts and what they
    cost; nothing on a GPU."""
    if device != "cpu" or model in DRAFT_MODELS:
        return ""
    nano, turbo = (VARIANTS[name] for name in DRAFT_MODELS)
    costs = (f"English only; they ignore exaggeration, CFG weight and min-p; they clone from clips of "
             f"{nano.min_reference_seconds:g} s or more; smaller models, their voices sound less natural and less "
             f"like the reference than {model}'s")
    return (f"No GPU here: for quick drafts, choose {nano.name} (fastest) or {turbo.name} above ({costs}); "
            f"then make the final take with {model}.")
