"""The desk's pieces without a browser: presets, reference checks, text preview, variants, launch options."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from fastapi import FastAPI
import numpy as np
import pytest
import soundfile as sf

import app
from api import exposure
from engine import PARAMETER_RANGES, EngineConfig, InvalidRequest, NotFound, VoiceLibrary, audio, presets
from settings import Settings
from tools import random_checkpoint
from engine.models import VARIANTS
from ui import handlers, history, reference

RATE = 24000


def test_presets_round_trip_and_refuse_unknown_names(tmp_path):
    assert presets.list_presets(Path(__file__).parent.parent / "presets")[:2] == ["calm", "dramatic"]
    saved = presets.save_preset(tmp_path, "My Audiobook!", {"exaggeration": 0.4, "speed": 0.9})
    assert saved == "my-audiobook"
    assert presets.list_presets(tmp_path) == ["my-audiobook"]
    assert presets.load_preset(tmp_path, "my-audiobook") == {"exaggeration": 0.4, "speed": 0.9}
    with pytest.raises(NotFound):
        presets.load_preset(tmp_path, "../etc/passwd")
    with pytest.raises(InvalidRequest):
        presets.save_preset(tmp_path, "x", {"volume": 11})


def test_a_persons_presets_are_saved_in_the_data_folder_beside_the_shipped_ones(tmp_path):
    shipped = Path(__file__).parent.parent / "presets"
    shelf = presets.PresetShelf(tmp_path / "data" / "presets", shipped)
    assert shelf.save("Calm", {"exaggeration": 0.2}) == "calm"
    assert (tmp_path / "data" / "presets" / "calm.json").is_file() and "calm.json" not in os.listdir(tmp_path)
    assert shelf.load("calm") == {"exaggeration": 0.2}  # theirs wins over the shipped one of that name
    assert shelf.load("narration") == presets.load_preset(shipped, "narration")
    assert shelf.names() == presets.list_presets(shipped)
    with pytest.raises(NotFound, match="There is no preset 'nope'"):
        shelf.load("nope")


def _wav(tmp_path, samples: np.ndarray, name: str) -> str:
    path = tmp_path / name
    sf.write(path, samples, RATE)
    return str(path)


def test_reference_checks_warn_and_trim(tmp_path):
    voice = random_checkpoint.synthetic_voice(3.0, seed=1)
    quiet = np.zeros(RATE * 4, np.float32)
    padded = _wav(tmp_path, np.concatenate([quiet, voice, quiet]), "padded.wav")
    report = reference.inspect_clip(padded, min_seconds=1.0)
    assert report.usable and any("Trim" in h for h in report.hints)
    trimmed = reference.trim_clip(padded, tmp_path)
    assert 2.9 < sf.info(trimmed).duration < 3.5
    assert not reference.inspect_clip(_wav(tmp_path, quiet, "silent.wav"), 1.0).usable
    short = reference.inspect_clip(_wav(tmp_path, voice[: RATE // 2], "short.wav"), 1.0)
    assert "too short" in short.message()
    clipped = reference.inspect_clip(_wav(tmp_path, np.clip(voice * 20, -1, 1), "loud.wav"), 1.0)
    assert any("clipped" in h for h in clipped.hints)


def test_an_unreadable_clip_is_told_plainly_without_a_length(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio at all " * 100)
    report = reference.inspect_clip(notes, 1.0)
    assert not report.usable
    assert report.message() == "⚠ Could not read this file as audio; give a wav, mp3, flac, ogg, m4a or webm clip."


def test_the_desks_temporary_files_are_removed(tmp_path):
    desk = _handlers(tmp_path)
    (desk.takes_dir / "take-1.wav").write_bytes(b"RIFF")
    desk.remove_takes()  # what runs at exit, or when the desk is dropped
    assert not desk.takes_dir.exists()


def test_scratch_files_older_than_a_day_are_swept(tmp_path):
    desk = _handlers(tmp_path)
    old, fresh = desk.takes_dir / "take-1.wav", desk.takes_dir / "api-2-seed7.mp3"
    for path in (old, fresh):
        path.write_bytes(b"RIFF")
    a_day_ago = time.time() - handlers.SCRATCH_MAX_AGE_SECONDS - 60
    os.utime(old, (a_day_ago, a_day_ago))
    desk.sweep_scratch()
    assert not old.exists() and fresh.exists()
    desk.remove_takes()


def _handlers(tmp_path, device: str = "cpu") -> handlers.Handlers:
    engine = SimpleNamespace(config=EngineConfig(model="chatterbox"), library=None, status=lambda: {"device": device})
    return handlers.Handlers(engine, Settings(max_input_chars=100))


def test_text_count_chunk_preview_and_limit(tmp_path):
    h = _handlers(tmp_path)
    count, preview = h.text_info("First sentence. Second one here.")
    assert count.startswith("32 / 100 characters") and "2 chunks" in count
    assert preview.splitlines() == ["1. First sentence.  ⏸ 0.3 s", "2. Second one here."]
    assert h.text_info("Hi. [pause:2s] Ha [laugh] ha.")[1].splitlines() == [
        "1. Hi.  ⏸ 2 s", "2. Ha ha.", "(chatterbox does not perform [laugh]: left unsaid)"]
    assert h.text_info("Ha [laugh] ha.", model="chatterbox-turbo")[1] == "1. Ha [laugh] ha."
    assert "not a pause tag" in h.text_info("Wait [pause:long] here.")[1]
    assert "over the limit" in h.text_info("x" * 101)[0]
    assert h.text_info("")[1] == "Nothing to say yet."
    with pytest.raises(gr.Error, match="limit is 100"), handlers.readable_errors():
        h.composer.compose(h.ask("x" * 101, None, None, (), None, None, None))


def test_the_loudness_box_offers_levels_takes_a_typed_number_and_refuses_other_text(tmp_path):
    h = _handlers(tmp_path)

    def loudness(value):
        return h.composer.compose(h.ask("Hi.", None, None, (), None, None, None, finishing=(1, False, value))).loudness

    assert loudness(handlers.AS_MADE) is None and loudness("") is None and loudness(None) is None
    assert [loudness(value) for _, value in handlers.LOUDNESS_CHOICES[1:]] == [-23.0, -16.0, -14.0]
    assert loudness(" -20.5 ") == -20.5
    with pytest.raises(InvalidRequest, match="loudness must be a number of LUFS"):
        loudness("loud")


def test_variant_controls_disable_what_the_variant_ignores(tmp_path):
    h = _handlers(tmp_path)
    *sliders, language, note = h.variant_controls("chatterbox-turbo")
    interactive = {p: u["interactive"] for p, u in zip(handlers.PARAMS, sliders)}
    assert interactive == {"exaggeration": False, "cfg_weight": False, "temperature": True, "top_p": True,
                           "min_p": False, "repetition_penalty": True, "speed": True}
    assert language["interactive"] is False and "ignores CFG weight / pace" in note  # the sliders' own labels
    assert h.variant_controls("chatterbox-multilingual")[-2]["interactive"] is True


def test_on_a_cpu_the_desk_suggests_nano_or_turbo_for_drafts_with_their_cost_and_switches_nothing(tmp_path):
    updates = _handlers(tmp_path).variant_controls("chatterbox-multilingual-v3")
    assert len(updates) == len(handlers.PARAMS) + 2  # sliders, language, note: the model choice is left as it is
    assert "No GPU here" in updates[-1] and "chatterbox-nano (fastest) or chatterbox-turbo" in updates[-1]
    assert "English only" in updates[-1] and "final take with chatterbox-multilingual-v3" in updates[-1]
    assert "No GPU" not in _handlers(tmp_path).variant_controls("chatterbox-nano")[-1]
    assert "No GPU" not in _handlers(tmp_path, device="cuda").variant_controls("chatterbox")[-1]


def test_choosing_a_variant_sets_the_sliders_whose_default_is_its_own(tmp_path):
    h = _handlers(tmp_path)
    values = {name: [u.get("value") for u in h.variant_defaults(name)] for name in VARIANTS}
    by_parameter = {name: dict(zip(handlers.PARAMS, row)) for name, row in values.items()}
    assert by_parameter["chatterbox-multilingual"]["repetition_penalty"] == 2.0
    assert by_parameter["chatterbox-turbo"]["top_p"] == 0.95
    assert by_parameter["chatterbox"]["repetition_penalty"] == 1.2 and by_parameter["chatterbox"]["top_p"] == 1.0
    assert by_parameter["chatterbox"]["exaggeration"] is None  # left as the user set it


def test_history_lists_newest_first():
    takes = history.add(history.add([], history.Take(1, "one", "v", None, None, {"seed": 5})),
                        history.Take(2, "two", "v", None, None, {"seed": 6}))
    assert [n for _, n in history.choices(takes)] == [2, 1]
    assert history.find(takes, 1).label() == "#1 · seed 5 · one"


def test_share_launches_with_share_true_a_generated_key_and_a_warning(monkeypatch, capsys, tiny_checkpoint, tmp_path):
    launched = {}

    def launch(self, **kwargs):
        launched.update(kwargs)
        return FastAPI(**kwargs["app_kwargs"]), None, None

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    code = app.main(["--share", "--no-browser", "--device", "cpu", "--checkpoint-dir", str(tiny_checkpoint),
                     "--data-dir", str(tmp_path)])
    assert code == 0 and launched["share"] is True and launched["server_name"] == "127.0.0.1"
    assert "/health" in {route.path for route in launched["app_kwargs"]["routes"]}
    out, err = capsys.readouterr()
    key = out.split("API key (generated", 1)[1].split(": ", 1)[1].split()[0]
    assert launched["auth"]("anyone", key) and not launched["auth"]("anyone", "guess")
    assert launched["blocked_paths"] == [str(tmp_path / "voices")]
    assert "WARNING: the studio is exposed" in err and "An API key guards it" in err
    assert exposure.exposure_warning(Settings()) is None
    assert "0.0.0.0" in exposure.exposure_warning(Settings(host="0.0.0.0"))
    assert "Wyoming" not in exposure.exposure_warning(Settings(host="0.0.0.0", api_key="k"))
    wyoming = exposure.exposure_warning(Settings(host="0.0.0.0", api_key="k", wyoming=True, wyoming_port=10300))
    assert "Wyoming server on 0.0.0.0:10300 has NO authentication" in wyoming
    assert exposure.exposure_warning(Settings(wyoming=True)) is None  # on loopback only


def test_an_exposed_studio_gets_a_key_unless_told_to_run_open():
    assert exposure.with_key(Settings(host="0.0.0.0"))[1] and exposure.with_key(Settings(share=True))[0].api_key
    assert exposure.with_key(Settings(host="0.0.0.0", open=True)) == (Settings(host="0.0.0.0", open=True), False)
    assert exposure.with_key(Settings(host="0.0.0.0", api_key="mine"))[0].api_key == "mine"
    assert exposure.with_key(Settings()) == (Settings(), False)
    assert "auth" not in exposure.launch_options(Settings())


def test_a_space_binds_all_interfaces_on_7860(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/chatterbox-studio")
    settings = Settings.from_args(app.parse([]))
    assert (settings.host, settings.port, settings.no_browser) == ("0.0.0.0", 7860, True)


def desk_with_a_library(tmp_path, clip_name: str, clip: bytes) -> tuple[handlers.Handlers, Path]:
    """The desk's callbacks over an empty voice library, and a clip file to save."""
    h = _handlers(tmp_path)
    h.engine.library = VoiceLibrary(tmp_path / "voices")
    path = tmp_path / clip_name
    path.write_bytes(clip)
    return h, path


def test_library_voice_save_rename_delete(tmp_path, reference_clip):
    h, clip = desk_with_a_library(tmp_path, "ana.mp3", reference_clip)
    values = [0.7, 0.3, 0.8, 1.0, 0.05, 1.2, 1.0]
    dropdown, note = h.save_voice(str(clip), "Ana", "", *values)
    assert dropdown["value"] == "ana.mp3" and ("Ana (ana.mp3)", "ana.mp3") in dropdown["choices"]
    assert h.voice_settings("ana.mp3")[:2] == [0.7, 0.3]
    assert h.rename_voice("ana.mp3", "Ana, warm")[0]["choices"][-1] == ("Ana, warm (ana.mp3)", "ana.mp3")
    assert h.delete_voice("ana.mp3")[0]["value"] == "" and h.engine.library.list() == []
    with pytest.raises(gr.Error, match="no library voice"):
        h.delete_voice("ana.mp3")


def test_a_clip_saved_twice_is_chosen_not_copied_and_delete_names_the_voice(tmp_path, reference_clip):
    h, clip = desk_with_a_library(tmp_path, "ref.mp3", reference_clip)
    values = [0.5, 0.5, 0.8, 1.0, 0.05, 1.2, 1.0]
    h.save_voice(str(clip), "Narrator One", "", *values)
    dropdown, note = h.save_voice(str(clip), "Narrator Two", "", *values)
    assert dropdown["value"] == "ref.mp3" and "saved already, as **Narrator One**" in note
    assert [v.name for v in h.engine.library.list()] == ["Narrator One"]
    assert h.delete_voice(None)[1] == "Nothing was deleted."  # the person said no to the confirmation
    assert h.delete_voice("ref.mp3")[1] == "Deleted **Narrator One**."


def test_generate_streams_chunks_then_finishes_the_take(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(handlers, "STREAMING", True)
    h = handlers.Handlers(engine, Settings())
    defaults = [PARAMETER_RANGES[p][2] for p in handlers.PARAMS]
    steps = [step for step in h.generate("One. Two.", None, "", "flac", *defaults, 5, "", "", True, [], None)
             if step != handlers.STILL_WORKING]
    streamed, final = steps[:-1], steps[-1]
    assert len(streamed) == 2 and all(isinstance(s[0], tuple) and s[0][0] == 24000 for s in streamed)
    player, downloads, note, takes, pick = final
    assert [Path(d).suffix for d in downloads] == [".flac", ".srt", ".vtt"]  # the captions box was ticked
    assert Path(downloads[1]).read_text().count(" --> ") == 2
    assert "Seed used: **5**" in note and "built-in voice" in note
    assert takes[0].values["seed"] == 5 and pick["value"] == takes[0].number
    assert h.load_take(takes, takes[0].number)[0] == "One. Two."


def test_a_take_closed_midway_cancels_its_job_and_stop_keeps_the_chunks_made(engine, tmp_path):
    """Gradio closes a take's generator on Stop, a closed tab or a reload: the job ends within a heartbeat."""
    h = handlers.Handlers(engine, Settings())
    defaults = [PARAMETER_RANGES[p][2] for p in handlers.PARAMS]
    text = " ".join(f"Sentence number {n} is long enough to be a chunk of its own, since it runs on and on with "
                    f"more words than one chunk of two hundred and fifty characters could hold beside another "
                    f"sentence as long as it is." for n in range(6))
    visitor = SimpleNamespace(session_hash="stopper")
    take = h.generate(text, None, "", "wav", *defaults, 3, "", "", False, [], visitor)
    cancelled_before = engine.status()["cancelled_jobs"]
    for step in take:
        assert step == handlers.STILL_WORKING  # no ffmpeg here: nothing streams, the take only waits
        if (run := h.in_progress.get("stopper")) and run.chunks:  # the first yield comes before the job
            break
    total = h.in_progress["stopper"].job.chunks
    take.close()
    deadline = time.monotonic() + 10
    while engine.status()["busy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not engine.status()["busy"] and engine.status()["cancelled_jobs"] == cancelled_before + 1
    player, download, note, takes, pick = h.stop([], visitor)
    assert total == 6 and note.startswith("Seed used: **3**") and "Stopped after 1 of 6 chunks" in note
    assert audio.decode(Path(player).read_bytes()).size > 0 and takes[0].number == pick["value"]
    assert h.stop([], visitor)[2] == "Stopped."


def test_the_desk_keeps_the_best_of_its_candidates_and_shows_the_score(engine, tiny_whisper, tmp_path):
    from engine.quality import Recognizer

    h = handlers.Handlers(engine, Settings())
    h.recognizer = Recognizer(str(tiny_whisper))  # the studio's would download Whisper base
    defaults = [PARAMETER_RANGES[p][2] for p in handlers.PARAMS]
    steps = [step for step in h.generate("Hello.", None, "", "wav", *defaults, 40, "", "", False, [], None, 2, True, -20)
             if step != handlers.STILL_WORKING]
    player, download, note, takes, pick = steps[-1]
    assert "best of 2 candidates" in note and "character error rate" in note
    assert Path(player).exists() and takes[0].values["seed"] in (40, 41)
