"""The Wyoming protocol over the engine, for Home Assistant's local voice: describe, synthesize and its streaming form.

A thin adapter like api/: every text becomes an `Ask` for the studio's request composer and a job on the engine's one
queue; the audio goes back as 16-bit mono PCM events as the engine makes it.
"""

from .server import WyomingServer

__all__ = ["WyomingServer"]
