"""Weights load through one path whatever the depth of T3; devices resolve or fail clearly."""

import pytest
import torch

from engine import ModelUnavailable
from engine.models import VARIANTS, load, resolve_device
from engine.models.loading import _backbone_shape
from engine.models.weights import read_state


def test_t3_depth_and_width_are_read_from_the_weights(tiny_checkpoint):
    assert _backbone_shape(read_state(tiny_checkpoint / "t3_cfg.safetensors")) == (2, 1024)


def test_tiny_checkpoint_loads_through_the_same_path_as_released_weights(tiny_checkpoint):
    model = load(VARIANTS["chatterbox"], tiny_checkpoint, "cpu")
    assert len(model.upstream.t3.tfmr.layers) == 2
    assert model.upstream.conds is not None
    assert model.sample_rate == 24000


def test_auto_device_falls_back_to_cpu_here():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") in (expected, "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_forcing_a_missing_gpu_says_what_to_do():
    with pytest.raises(ModelUnavailable) as raised:
        resolve_device("cuda")
    assert "--device cpu" in raised.value.message


def test_unknown_device_is_refused():
    with pytest.raises(ModelUnavailable):
        resolve_device("tpu")
