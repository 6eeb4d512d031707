"""How the engine is set up: device, model, weights, limits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def studio_cache() -> Path:
    """The studio's cache folder (built random checkpoints, ONNX exports): CHATTERBOX_STUDIO_CACHE, else
    ~/.cache/chatterbox-studio."""
    return Path(os.environ.get("CHATTERBOX_STUDIO_CACHE", Path.home() / ".cache" / "chatterbox-studio"))


@dataclass(frozen=True)
class EngineConfig:
    device: str = "auto"
    model: str = "chatterbox"
    checkpoint_dir: Path | None = None
    data_dir: Path = Path("data")
    queue_size: int = 16
    chunk_chars: int = 250
    max_chunk_tokens: int = 1000
    voice_cache_size: int = 32
    max_reference_seconds: float = 30.0
    idle_unload_seconds: float = 0.0  # 0: keep the model loaded
    precision: str = "fast"  # or "exact": see engine/decoding/acceleration.py
    flow_steps: int | None = None  # None: the precision's own
    reference_seconds: float | None = None  # of the reference prompt S3Gen's flow hears; None: the precision's own
    batch_requests: int | None = None  # the most requests sampled together; None: the precision's and device's own
    asr_model: str = "base"  # the speech recognizer that checks takes: a folder, a name to download, or "off"

    @property
    def voices_dir(self) -> Path:
        return self.data_dir / "voices"
