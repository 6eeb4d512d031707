"""Where a variant's weights come from: a checkpoint directory or a download from the hub, and their state dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..errors import ModelUnavailable
from .variants import VariantSpec


def locate_weights(spec: VariantSpec, checkpoint_dir: Path | None, progress: Callable[[str], None]) -> Path:
    """The directory holding `spec`'s files: the given checkpoint directory, or a download from the hub."""
    if checkpoint_dir is not None:
        missing = spec.missing_files(checkpoint_dir)
        if not missing:
            return checkpoint_dir
        raise ModelUnavailable(
            f"The checkpoint directory {checkpoint_dir} has no {spec.name} weights (missing: {', '.join(missing)}). "
            f"Point --checkpoint-dir at a folder with Chatterbox's files, or leave it out to download "
            f"{spec.repo_id} from Hugging Face."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    progress(f"Getting {spec.name} weights from Hugging Face ({spec.repo_id})…")
    try:
        path = snapshot_download(repo_id=spec.repo_id, allow_patterns=list(spec.files))
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        raise ModelUnavailable(
            f"Could not download {spec.name} weights from Hugging Face ({error.__class__.__name__}). "
            f"Check the internet connection and try again, or on a connected machine run "
            f"`hf download {spec.repo_id} --local-dir chatterbox-weights`, copy that folder here "
            f"and start with --checkpoint-dir chatterbox-weights."
        ) from None
    directory = Path(path)
    missing = spec.missing_files(directory)
    if missing:
        raise ModelUnavailable(f"The download of {spec.repo_id} lacks {', '.join(missing)}; try again.")
    return directory


def read_state(path: Path) -> dict:
    """The state dict in a `.safetensors` or `.pt` file (upstream's `.pt` files may wrap it as {"model": [state]})."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"][0] if "model" in state else state
