"""The studio's Gradio desk: a thin adapter over the engine."""

from .desk import build_desk

__all__ = ["build_desk"]
