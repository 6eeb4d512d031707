"""ZeroGPU hook: `spaces.GPU` where the `spaces` package is importable, a no-op everywhere else."""

from __future__ import annotations

from typing import Callable

try:
    import spaces
except ImportError:
    spaces = None


def gpu(fn: Callable) -> Callable:
    return spaces.GPU(duration=120)(fn) if spaces is not None else fn
