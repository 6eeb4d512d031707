"""Piper training sets: layout, resume, phrase files, checks."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import soundfile

from conftest import ROOT, studio_env
from dataset import DatasetRun, EngineSpeaker, HttpSpeaker, read_phrases
from dataset.runner import Take, Verification, check_clip
from engine import Ask, InvalidRequest
from engine.quality import SpeechChecker
from settings import Settings
from test_quality import SeededTranscriber
from tools.random_checkpoint import synthetic_voice


def speaker_of(engine, clip: bytes) -> EngineSpeaker:
    """A speaker of `clip` through the engine in this process."""
    return EngineSpeaker(engine, Settings().composer(engine.config, engine.library), Ask("", clip=clip))

def wav_info(path: Path) -> tuple[int, int, str]:
    """(sample rate, channels, subtype) of a wav file."""
    info = soundfile.info(str(path))
    return info.samplerate, info.channels, info.subtype


PHRASES = ["Hello there.", "Selamat pagi, apa khabar?", "Saya suka the weekend market.", "Short one.", "Last line!"]


def test_phrase_file_skips_blanks_and_duplicates_and_keeps_text_exactly(tmp_path):
    path = tmp_path / "phrases.txt"
    path.write_text("Hello there.\n\n  \nSelamat pagi, apa khabar?\nHello there.\nCafé — naïve\n", encoding="utf-8")
    phrases = read_phrases(path)
    assert phrases.phrases == ["Hello there.", "Selamat pagi, apa khabar?", "Café — naïve"]
    assert phrases.blank == 2 and phrases.duplicates == ["Hello there."]


def test_csv_and_tsv_need_their_text_column(tmp_path):
    (tmp_path / "p.csv").write_text("id,text\n1,\"One, with comma.\"\n2,Two.\n", encoding="utf-8")
    (tmp_path / "p.tsv").write_text("sentence\tid\nTab one.\t1\n", encoding="utf-8")
    assert read_phrases(tmp_path / "p.csv").phrases == ["One, with comma.", "Two."]
    assert read_phrases(tmp_path / "p.tsv", column="sentence").phrases == ["Tab one."]
    with pytest.raises(InvalidRequest, match="no 'text' column"):
        read_phrases(tmp_path / "p.tsv")


def test_non_utf8_phrase_file_is_refused(tmp_path):
    (tmp_path / "p.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(InvalidRequest, match="UTF-8"):
        read_phrases(tmp_path / "p.txt")


def test_clip_checks_refuse_empty_and_implausible_audio():
    import numpy as np

    assert check_clip(np.zeros(0), 22050, "Hi.") == "empty or silent audio"
    assert "too long" in check_clip(np.ones(22050 * 60), 22050, "Hi.")
    assert check_clip(np.ones(22050), 22050, "Hello there.") is None


class FlakySpeaker:
    """Test double: fails the first call for one phrase, then speaks through the real engine."""

    def __init__(self, inner, flaky_text):
        self.inner, self.flaky_text, self.failed = inner, flaky_text, False

    def speak(self, text, seed):
        if text == self.flaky_text and not self.failed:
            self.failed = True
            raise RuntimeError("simulated outage")
        return self.inner.speak(text, seed)


def test_five_phrases_make_a_piper_folder_and_resume_adds_only_what_is_missing(engine, reference_clip, tmp_path):
    speaker = FlakySpeaker(speaker_of(engine, reference_clip), PHRASES[1])
    run = DatasetRun(tmp_path / "set", "anwar", 22050, seed=5)
    summary = run.run(speaker, PHRASES[:3])
    assert summary["failures"] == 0 and summary["items"] == 3

    resumed = DatasetRun(tmp_path / "set", "anwar", 22050, seed=5)
    summary = resumed.run(speaker, PHRASES)
    assert summary == {**summary, "items": 5, "skipped_done": 3, "new_items": 2}

    lines = (tmp_path / "set" / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == [f"anwar_{i + 1:05d}|{p}" for i, p in enumerate(PHRASES)]
    for i in range(5):
        assert wav_info(tmp_path / "set" / "wavs" / f"anwar_{i + 1:05d}.wav") == (22050, 1, "PCM_16")


def test_in_process_phrases_share_requests_yet_keep_their_own_seeds(engine, reference_clip, tmp_path, monkeypatch):
    submitted, submit = [], engine.submit
    monkeypatch.setattr(engine, "submit", lambda request: submitted.append(request) or submit(request))
    monkeypatch.setattr("dataset.runner.PHRASES_PER_REQUEST", 4)
    phrases = [f"Phrase number {n}." for n in range(6)] + ["word " * 60 + "end."]
    run = DatasetRun(tmp_path / "set", "v", 22050, seed=9)
    summary = run.run(speaker_of(engine, reference_clip), phrases)
    assert summary["items"] == 7 and summary["failures"] == 0
    assert [(r.seed, r.text.split("\n\n"), r.separate_phrases) for r in submitted] == [
        (9, phrases[0:4], True), (13, phrases[4:6], True), (15, [phrases[6]], False)]  # too long to share


def test_a_shared_phrase_that_fails_its_check_is_made_again_alone(engine, reference_clip, tmp_path, monkeypatch):
    refused = {"Phrase two.": 1}
    keep = DatasetRun.keep

    def refuse_once_double(self, index, text, samples):
        if refused.get(text):
            refused[text] -= 1
            return Take(samples, 0, "refused once (a test double)")
        return keep(self, index, text, samples)

    monkeypatch.setattr(DatasetRun, "keep", refuse_once_double)
    speaker = speaker_of(engine, reference_clip)
    summary = DatasetRun(tmp_path / "set", "v", 22050).run(speaker, ["Phrase one.", "Phrase two.", "Phrase three."])
    assert summary["items"] == 3 and summary["failures"] == 0 and refused == {"Phrase two.": 0}


def dataset_command(tiny_checkpoint, *extra):
    return [sys.executable, str(ROOT / "app.py"), "dataset", "--phrases", "phrases.txt", "--voice", "voice.mp3",
            "--out", "set", "--checkpoint-dir", str(tiny_checkpoint), *extra]


def test_cli_run_killed_midway_resumes_with_every_phrase_exactly_once(tiny_checkpoint, reference_clip, tmp_path):
    (tmp_path / "voice.mp3").write_bytes(reference_clip)
    (tmp_path / "phrases.txt").write_text("One phrase.\n\nTwo phrase.\nOne phrase.\nThree phrase.\n", encoding="utf-8")
    metadata = tmp_path / "set" / "metadata.csv"
    first = subprocess.Popen(dataset_command(tiny_checkpoint), cwd=tmp_path, env=studio_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (metadata.exists() and metadata.read_text()) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 1 <= len(metadata.read_text().splitlines()) < 3

    refused = subprocess.run(dataset_command(tiny_checkpoint), cwd=tmp_path, env=studio_env(), capture_output=True,
                             text=True, timeout=600)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    resumed = subprocess.run(dataset_command(tiny_checkpoint, "--resume"), cwd=tmp_path, env=studio_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "Skipped 1 blank line(s) and 1 duplicate(s)" in resumed.stderr
    assert sorted(metadata.read_text(encoding="utf-8").splitlines()) == [
        "voice_00001|One phrase.", "voice_00002|Two phrase.", "voice_00003|Three phrase."]
    assert sorted(p.name for p in (tmp_path / "set" / "wavs").iterdir()) == [
        "voice_00001.wav", "voice_00002.wav", "voice_00003.wav"]
    assert json.loads((tmp_path / "set" / "dataset.json").read_text())["items"] == 3


def test_server_mode_drives_the_running_studio_into_the_same_layout(studio, reference_clip, tmp_path):
    created = requests.post(f"{studio}/api/create_speaker", files={"file": ("Dataset Voice.mp3", reference_clip)},
                            data={"name": "Dataset Voice"}, timeout=60)
    assert created.ok, created.text
    voice_id = created.json()["id"]
    speaker = HttpSpeaker(studio, voice_id)
    run = DatasetRun(tmp_path / "remote", Path(voice_id).stem, 22050, seed=3)
    summary = run.run(speaker, PHRASES[:2], workers=2)
    assert summary["items"] == 2 and summary["failures"] == 0
    lines = sorted((tmp_path / "remote" / "metadata.csv").read_text(encoding="utf-8").splitlines())
    assert lines == [f"Dataset_Voice_{i + 1:05d}|{p}" for i, p in enumerate(PHRASES[:2])]
    for i in range(2):
        assert wav_info(tmp_path / "remote" / "wavs" / f"Dataset_Voice_{i + 1:05d}.wav") == (22050, 1, "PCM_16")


class SeededVoice:
    """Test double: speaks a voice-like signal for any text and seed, and remembers the latest (seed, text) for the
    transcriber double."""

    def __init__(self):
        self.spoken = []

    @property
    def latest(self):
        return self.spoken[-1]

    def speak(self, text, seed):
        self.spoken.append((seed, text))
        return synthetic_voice(1.0 + len(text) / 30, seed=seed % 1000)


def verified_run(out, voice, keep_failed=False) -> DatasetRun:
    """A run that hears "Hello there." well at once, "Second phrase." at its first retake, "Never right." never."""
    good = {("Hello there.", 0), ("Second phrase.", 100_001)}
    checker = SpeechChecker(SeededTranscriber(lambda samples: voice.latest,
                                              lambda seed, text: (text, seed) in good))
    return DatasetRun(out, "v", 22050, verification=Verification(checker, max_cer=0.1, retakes=2,
                                                                 keep_failed=keep_failed))


def test_verified_dataset_remakes_misheard_phrases_keeps_the_best_and_records_the_rest(tmp_path):
    voice = SeededVoice()
    run = verified_run(tmp_path / "set", voice)
    summary = run.run(voice, ["Hello there.", "Second phrase.", "Never right."])
    run.describe(summary)
    assert voice.spoken == [(0, "Hello there."), (1, "Second phrase."), (100_001, "Second phrase."),
                            (2, "Never right."), (100_002, "Never right."), (200_002, "Never right.")]
    assert (tmp_path / "set" / "metadata.csv").read_text().splitlines() == ["v_00001|Hello there.",
                                                                            "v_00002|Second phrase."]
    [failure] = run.failures()
    assert failure["name"] == "v_00003" and failure["transcript"] == "Never  mumble mumble"
    assert float(failure["cer"]) > 0.1 and "character error rate" in failure["reason"]
    assert (tmp_path / "set" / "refused" / "v_00003.wav").exists()
    assert not (tmp_path / "set" / "wavs" / "v_00003.wav").exists()
    described = json.loads((tmp_path / "set" / "dataset.json").read_text())
    assert described["recognizer"] == "seeded-double" and described["max_cer"] == 0.1
    assert described["scores"]["count"] == 2 and described["scores"]["max"] == 0.0
    assert described["loudness_lufs"] == -23.0 and described["failures"] == 1

    from ui.dataset_tab import score_rows  # what the Dataset tab shows

    assert [row[:3] for row in score_rows(run)] == [["v_00001", "yes", 0.0], ["v_00002", "yes", 0.0],
                                                    ["v_00003", "no", float(failure["cer"])]]


def test_keep_failed_lists_a_phrase_that_never_passes_with_its_best_take(tmp_path):
    voice = SeededVoice()
    run = verified_run(tmp_path / "set", voice, keep_failed=True)
    summary = run.run(voice, ["Never right."])
    assert summary["items"] == 1 and summary["failures"] == 1
    assert (tmp_path / "set" / "metadata.csv").read_text() == "v_00001|Never right.\n"


def test_cli_verify_hears_every_clip_with_the_real_recognizer(tiny_checkpoint, tiny_whisper, reference_clip, tmp_path):
    (tmp_path / "voice.mp3").write_bytes(reference_clip)
    (tmp_path / "phrases.txt").write_text("One phrase.\n", encoding="utf-8")
    done = subprocess.run(dataset_command(tiny_checkpoint, "--verify", "--asr-model", str(tiny_whisper),
                                          "--retakes", "0", "--keep-failed"),
                          cwd=tmp_path, env=studio_env(), capture_output=True, text=True, timeout=600)
    described = json.loads((tmp_path / "set" / "dataset.json").read_text())
    assert described["recognizer"] == tiny_whisper.name and described["retakes"] == 0
    assert described["items"] == 1 and described["scores"]["count"] == 1  # random weights: heard, kept anyway
    assert done.returncode == (1 if described["failures"] else 0), done.stderr


def test_cli_verify_without_a_recognizer_says_how_to_get_one(tiny_checkpoint, reference_clip, tmp_path):
    (tmp_path / "voice.mp3").write_bytes(reference_clip)
    (tmp_path / "phrases.txt").write_text("One phrase.\n", encoding="utf-8")
    refused = subprocess.run(dataset_command(tiny_checkpoint, "--verify", "--asr-model", "off"), cwd=tmp_path,
                             env=studio_env(), capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "--asr-model DIR" in refused.stderr
