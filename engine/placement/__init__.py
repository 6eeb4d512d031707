"""Where the model runs, behind the one surface every front door uses.

    local (the default)  engine.Engine: one worker thread and queue in this process
    Ray Serve            ray_serve.RayPlacement: a Serve deployment of engine replicas (--replicas, --ray-address)
    ZeroGPU              zerogpu.ZeroGpuPlacement: each synthesis inline in a `spaces.GPU` call (a ZeroGPU Space)

Only the composition root (app.py, cli.py) chooses, through `build_placement`; Ray and `spaces` are imported only
by the placement that needs them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from ..audio import AudioChunk
from ..config import EngineConfig
from ..engine import Engine, Job
from ..errors import EngineError
from ..request import SynthesisRequest
from ..voices import VoiceLibrary


class Placement(Protocol):
    """What the desk, the API, the CLI and the dataset runner use of an engine."""

    config: EngineConfig
    library: VoiceLibrary

    @property
    def request_batch(self) -> int:
        """How many requests it serves at once (the desk's concurrency)."""

    @property
    def requests_to_fill(self) -> int:
        """How many requests a client with many to make (the dataset runner) keeps in flight to keep it busy."""

    def submit(self, request: SynthesisRequest) -> Job: ...

    def synthesize(self, request: SynthesisRequest) -> AudioChunk: ...

    def status(self) -> dict:
        """What /health shows."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class PlacementChoice:
    """Where the settings ask the model to run: `replicas` engines on a local Ray instance, or on the Ray cluster at
    `ray_address`, optionally autoscaled between `autoscale` (min, max) replicas."""

    replicas: int = 0
    ray_address: str | None = None
    autoscale: tuple[int, int] | None = None

    @property
    def on_ray(self) -> bool:
        return bool(self.replicas or self.ray_address or self.autoscale)


def on_zero_gpu(environ=os.environ) -> bool:
    """Whether this process runs on a Hugging Face ZeroGPU Space: SPACES_ZERO_GPU read as the `spaces` package reads
    it (spaces/config.py)."""
    return (environ.get("SPACES_ZERO_GPU") or "").lower() in ("1", "t", "true")


def build_placement(config: EngineConfig, choice: PlacementChoice = PlacementChoice()) -> Placement:
    """The placement the settings and the environment ask for."""
    if choice.on_ray:
        try:
            from .ray_serve import RayPlacement
        except ImportError as error:
            raise EngineError(f"Serving from replicas needs Ray Serve ({error.msg}): start with ./launch.sh, which "
                              f"installs it, or run: pip install -r requirements-cluster.txt") from None
        return RayPlacement(config, choice)
    if on_zero_gpu():
        from .zerogpu import ZeroGpuPlacement

        return ZeroGpuPlacement(config)
    return Engine(config)
