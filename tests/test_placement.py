"""Choosing where the model runs: only the composition root chooses, and the default imports neither Ray nor
`spaces`."""

import subprocess
import sys

import pytest

from conftest import ROOT
from engine.placement import PlacementChoice
from settings import Settings


def settings_from(*flags: str) -> Settings:
    import app

    return Settings.from_args(app.parse(list(flags)))


def test_the_flags_choose_the_placement():
    assert settings_from().placement == PlacementChoice() and not PlacementChoice().on_ray
    assert settings_from("--replicas", "2").placement == PlacementChoice(replicas=2)
    assert settings_from("synth", "Hi.", "--ray-address", "auto", "--autoscale", "1:4").placement == \
        PlacementChoice(ray_address="auto", autoscale=(1, 4))
    with pytest.raises(SystemExit):
        settings_from("--autoscale", "4:1")


def test_a_plain_studio_imports_neither_ray_nor_spaces(tmp_path):
    code = ("import sys, app; from engine.placement import build_placement; from settings import Settings; "
            f"s = Settings.from_args(app.parse(['--device', 'cpu', '--data-dir', {str(tmp_path)!r}])); "
            "engine = build_placement(s.engine, s.placement); "
            "print(type(engine).__name__, 'ray' in sys.modules, 'spaces' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["Engine", "False", "False"], done.stderr
