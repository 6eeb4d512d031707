"""`app.py synth` from a terminal, as a user runs it."""

import hashlib
import subprocess
import sys

import app
import cli
from conftest import ROOT, studio_env
from engine import audio


def synth(*args, cwd, env: dict | None = None):
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "synth", *map(str, args)], cwd=cwd,
                          env=studio_env(**(env or {})), capture_output=True, text=True, timeout=600)


def test_same_seed_writes_identical_files_in_the_format_asked(tiny_checkpoint, tmp_path):
    digests = []
    for name in ("a.wav", "b.wav"):
        run = synth("Hello there.", "--checkpoint-dir", tiny_checkpoint, "-o", name, "--seed", 7, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "Synthesizing" in run.stderr and "seed 7" in run.stdout
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert audio.decode((tmp_path / "a.wav").read_bytes()).size > 0


def test_clone_from_a_clip_to_mp3_with_progress_over_chunks(tiny_checkpoint, tmp_path, reference_clip):
    (tmp_path / "ref.mp3").write_bytes(reference_clip)
    run = synth("First sentence. Second sentence.", "--voice", "ref.mp3", "--checkpoint-dir", tiny_checkpoint,
                "-o", "out.mp3", "--exaggeration", 0.8, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "2/2" in run.stderr
    assert audio.decode((tmp_path / "out.mp3").read_bytes()).size > 0


def test_bad_input_exits_with_a_clear_message(tiny_checkpoint, tmp_path):
    run = synth("Hello.", "--checkpoint-dir", tiny_checkpoint, "--cfg-weight", 3, cwd=tmp_path)
    assert run.returncode == 2
    assert "cfg_weight is 3.0; it must be between 0.0 and 1.0" in run.stderr
    run = synth("Hello.", "--checkpoint-dir", tiny_checkpoint, "-o", "x.docx", cwd=tmp_path)
    assert run.returncode == 2 and "Cannot write '.docx'" in run.stderr


def test_a_parameter_left_out_is_not_sent_so_the_voice_or_model_default_holds():
    args = app.parse(["synth", "Hello.", "--temperature", "0.7"])
    assert args.speed is None and cli.parameters_from(args) == {"temperature": 0.7}


def test_the_terminal_answers_before_importing_the_models_packages():
    """`synth --help`, a mistake or a dry run take a second or two, not the ten that importing chatterbox takes."""
    probe = "import sys, app; print(sorted({m.split('.')[0] for m in sys.modules} & {'chatterbox', 'perth'}))"
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=studio_env(), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
