"""The desk's callbacks: each turns widget values into engine calls and engine answers into widget updates."""

from __future__ import annotations

import itertools
import logging
import random
import shutil
import tempfile
import time
import weakref
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import gradio as gr

from engine import (LANGUAGES, PARAMETER_RANGES, Ask, Engine, EngineError, InvalidRequest, Job, SynthesisRequest, Voice,
                    audio)
from engine.models import VARIANTS
from engine.quality import PickedTake, TakePicker, checker_for, finish, needs_whole_clip, recognizer_for
from engine.request import MAX_SEED
from engine.pipeline import preview
from engine.text.captions import CAPTION_FORMATS, cues_of
from settings import Settings

from . import api_tab, candidates, history
from .advice import draft_suggestion
from .history import Take
from .reference import inspect_clip, trim_clip

PARAMS = tuple(PARAMETER_RANGES)
LABELS = {  # each parameter's slider: label, help, step
    "exaggeration": ("Exaggeration", "Emotion and intensity: 0.5 is neutral, higher is more dramatic.", 0.05),
    "cfg_weight": ("CFG weight / pace", "Closeness to the reference; lower is slower, more deliberate.", 0.05),
    "temperature": ("Temperature", "Randomness of the delivery.", 0.05),
    "top_p": ("Top p", "Nucleus sampling; 1.0 turns it off.", 0.01),
    "min_p": ("Min p", "Drops unlikely tokens; 0 turns it off.", 0.01),
    "repetition_penalty": ("Repetition penalty", "Discourages stuck, repeated sounds.", 0.05),
    "speed": ("Speed", "Playback speed after synthesis (pitch kept).", 0.05),
}
DOWNLOAD_FORMATS = ("mp3", "wav", "flac", "opus", "aac")
STREAMING = bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))
TAKES_INPUT = 8 + len(PARAMS)  # where, among a take's inputs, the session's history comes
HEARTBEAT_SECONDS = 0.5  # how often a take waiting for audio gives Gradio a chance to stop it
RUNS_KEPT = 32  # sessions whose latest take Stop can still find
STILL_WORKING = (gr.skip(),) * 5  # what a take yields while it waits: nothing changes on the page

log = logging.getLogger(__name__)


@contextmanager
def readable_errors() -> Iterator[None]:
    """Engine errors become gr.Error with the engine's message: a readable notice for the person, one log line for
    the console, never a stack trace."""
    try:
        yield
    except EngineError as error:
        raise refusal(error.message, error.code) from None


def refusal(message: str, code: str = "invalid_request") -> gr.Error:
    """A person's mistake as the desk tells it: a notice on the page, one line in the console, no traceback."""
    log_refusal(message, code)
    return gr.Error(message, print_exception=False)


def log_refusal(message: str, code: str) -> None:
    log.info("Refused (%s): %s", code, message)


@dataclass
class TakeInProgress:
    """A take being made: what was asked, its job, and the chunks made so far."""

    synthesis: SynthesisRequest
    job: Job
    fmt: str
    voice_label: str
    clip: str | None
    chunks: list[audio.AudioChunk] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    picked: PickedTake | None = None  # the best chunks of every candidate, when the take asked for candidates

    def stage(self) -> str:
        """What the take waits for, and the time left at the speed this take has had so far."""
        stage = self.job.activity[:1].upper() + self.job.activity[1:]
        if not self.chunks or len(self.chunks) == self.job.chunks:
            return stage
        left = (time.monotonic() - self.started) / len(self.chunks) * (self.job.chunks - len(self.chunks))
        return f"{stage} · about {left:.0f} s left"


# Takes, trimmed clips and API results older than this leave the desk's scratch folder (and Gradio's cache), so a
# studio left running does not fill the disk; a take in an open tab's history replays for this long.
SCRATCH_MAX_AGE_SECONDS = 24 * 3600


# The loudness box's choices; another number of LUFS can be typed in.
AS_MADE = "as made"
LOUDNESS_CHOICES = [("As made", AS_MADE), ("-23 LUFS: broadcast (EBU R128)", "-23"), ("-16 LUFS: podcast", "-16"),
                    ("-14 LUFS: music streaming", "-14")]


def finishing_values(candidate_count: float | None = None, trim: bool | None = None,
                     loudness: float | str | None = None) -> dict:
    """The Advanced settings as request values: candidates, trim, and loudness (empty or "as made": as made)."""
    return {"candidates": None if candidate_count is None else int(candidate_count), "trim": trim,
            "loudness": loudness_value(loudness)}


def loudness_value(loudness: float | str | None) -> float | str | None:
    """The loudness box's value as LUFS; typed text that is no number is passed on for the request to refuse."""
    if isinstance(loudness, str):
        loudness = loudness.strip()
        if loudness.lower() in ("", AS_MADE):
            return None
        try:
            return float(loudness)
        except ValueError:
            return loudness
    return loudness


def seed_value(seed: float | None) -> int | None:
    """The seed box's value as a request seed: empty or negative means a new random seed."""
    return None if seed is None or seed == "" or seed < 0 else int(seed)


def random_seed() -> int:
    return random.randint(0, MAX_SEED)


class Handlers:
    """Callbacks bound to one engine and the studio's settings."""

    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.composer = settings.composer(engine.config, engine.library)
        self.presets = self.composer.presets
        self.takes_dir = Path(tempfile.mkdtemp(prefix="chatterbox-takes-"))  # takes and trimmed clips
        self.remove_takes = weakref.finalize(self, shutil.rmtree, self.takes_dir, ignore_errors=True)  # also at exit
        self.in_progress: dict[str, TakeInProgress] = {}  # each session's latest take, for what Stop keeps of it
        self.recognizer = recognizer_for(engine.config.asr_model, engine.config.device)
        self._numbers = itertools.count(1)

    def sweep_scratch(self) -> None:
        """Remove the scratch files older than SCRATCH_MAX_AGE_SECONDS."""
        cutoff = time.time() - SCRATCH_MAX_AGE_SECONDS
        for path in self.takes_dir.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:  # swept by a concurrent request
                pass

    def engine_status(self) -> str:
        status = self.engine.status()
        return f"Model **{status['model'] or self.engine.config.model}** on **{status['device']}** · {status['message']}"

    # Text

    def text_info(self, text: str, language: str | None = None, model: str | None = None,
                  captions: bool = False) -> tuple[str, str]:
        """The live character count, and the chunks and pauses synthesis will make of the text (the same rules)."""
        text = text or ""
        limit = self.settings.max_input_chars
        count = f"{len(text)} / {limit} characters"
        if len(text) > limit:
            count += f" — ⚠ over the limit by {len(text) - limit}; shorten the text"
        if not text.strip():
            return count, "Nothing to say yet."
        try:
            request = self.composer.compose(Ask(text[:limit], model=model or None, language=language or None,
                                                captions=bool(captions)))
            lines = preview(request, self.engine.config)
        except EngineError as error:
            return count, f"⚠ {error.message}"
        chunks = sum(1 for line in lines if line[:1].isdigit())
        count += f" · {chunks} chunk{'s' if chunks != 1 else ''}"
        return count, "\n".join(lines)

    # Reference clip

    def clip_report(self, clip: str | None) -> str:
        if not clip:
            return "No reference clip: the selected library voice, or the model's built-in voice, speaks."
        spec = self.composer.default_model
        return inspect_clip(clip, spec.min_reference_seconds, spec.name).message()

    def trim(self, clip: str | None) -> str:
        if not clip:
            raise refusal("Record or upload a reference clip first.")
        with readable_errors():
            return str(trim_clip(clip, self.takes_dir))

    # Voice library

    def voice_choices(self) -> list[tuple[str, str]]:
        return [("— the reference clip above (or the built-in voice) —", "")] + [
            (f"{v.name} ({v.id})", v.id) for v in self.engine.library.list()
        ]

    def refresh_voices(self, selected: str | None = "") -> dict:
        return gr.update(choices=self.voice_choices(), value=selected or "")

    def save_voice(self, clip: str | None, name: str, language: str, *values: float) -> tuple[dict, str]:
        """Save the reference clip to the library under `name`, with the current slider settings."""
        if not clip:
            raise refusal("Record or upload a reference clip to save as a voice.")
        name = (name or "").strip() or Path(clip).stem
        with readable_errors():
            clip_bytes = Path(clip).read_bytes()
            if saved := self.engine.library.with_clip(clip_bytes):
                return self.refresh_voices(saved.id), f"This clip is saved already, as **{saved.name}**: chosen."
            self.composer.check_clip(clip_bytes)
            voice = self.engine.library.add(Path(clip).name, Path(clip).read_bytes(), name=name,
                                            language=language or None, settings=dict(zip(PARAMS, values)))
        return self.refresh_voices(voice.id), f"Saved voice **{voice.name}** (id `{voice.id}`)."

    def rename_voice(self, voice_id: str, name: str) -> tuple[dict, str]:
        if not voice_id:
            raise refusal("Choose a saved voice to rename.")
        if not (name or "").strip():
            raise refusal("Type the new name first.")
        with readable_errors():
            voice = self.engine.library.update(voice_id, name=name)
        return self.refresh_voices(voice.id), f"Renamed to **{voice.name}**."

    def delete_voice(self, voice_id: str | None) -> tuple[dict, str]:
        """Delete the chosen voice; None: the person said no when the page asked to confirm."""
        if voice_id is None:
            return gr.skip(), "Nothing was deleted."
        if not voice_id:
            raise refusal("Choose a saved voice to delete.")
        with readable_errors():
            name = self.engine.library.get(voice_id).name
            self.engine.library.delete(voice_id)
        return self.refresh_voices(""), f"Deleted **{name}**."

    def voice_settings(self, voice_id: str) -> list:
        """A chosen library voice's saved settings, applied to the sliders (unchanged where it has none)."""
        if not voice_id:
            return [gr.skip()] * len(PARAMS)
        with readable_errors():
            saved = self.engine.library.get(voice_id).settings
        return [saved.get(p, gr.skip()) for p in PARAMS]

    # Presets

    def preset_choices(self) -> list[str]:
        return self.presets.names()

    def apply_preset(self, name: str | None) -> list:
        if not name:
            return [gr.skip()] * (len(PARAMS) + 1)
        with readable_errors():
            values = self.presets.load(name)
        return [values.get(p, PARAMETER_RANGES[p][2]) for p in PARAMS] + [values.get("seed", gr.skip())]

    def save_preset(self, name: str, *values: float) -> tuple[dict, str]:
        with readable_errors():
            saved = self.presets.save(name, dict(zip(PARAMS, values)))
        return gr.update(choices=self.preset_choices(), value=saved), f"Saved preset **{saved}**."

    # Model variant

    def variant_controls(self, model: str) -> list:
        """Sliders the variant ignores are disabled; language is enabled only where the variant speaks it."""
        spec = VARIANTS[model]
        updates = [gr.update(interactive=p not in spec.ignores) for p in PARAMS]
        note = f"{model} ignores {', '.join(LABELS[p][0] for p in spec.ignores)}." if spec.ignores else ""
        if not spec.takes_language_id:
            others = ", ".join(other.name for other in VARIANTS.values() if other.takes_language_id)
            note = (note + f" Language: {LANGUAGES[spec.languages[0]]} only (choose {others} for others).").strip()
        note = f"{note} {draft_suggestion(model, self.engine.status()['device'])}".strip()
        return [*updates, gr.update(interactive=spec.takes_language_id), note]

    def variant_defaults(self, model: str) -> list:
        """The sliders whose default differs between variants, set to `model`'s; the others as they are."""
        defaults = dict(VARIANTS[model].defaults)
        varying = {name for spec in VARIANTS.values() for name, _ in spec.defaults}
        return [gr.update(value=defaults.get(p, PARAMETER_RANGES[p][2])) if p in varying else gr.update()
                for p in PARAMS]

    # Synthesis

    def ask(self, text: str, clip: str | None, voice_id: str | None, params: tuple, seed: float | None,
            language: str | None, model: str | None, captions: bool = False, finishing: tuple = ()) -> Ask:
        """What the desk's values ask for: a library voice, else the reference clip, else the built-in voice; and
        `finishing`, the Advanced settings (candidates, trim, loudness) when given."""
        clip_bytes = Voice.from_file(clip).clip if clip and not voice_id else None
        return Ask(text or "", voice=voice_id or None, clip=clip_bytes, model=model or None, language=language or None,
                   values={**dict(zip(PARAMS, params)), "seed": seed_value(seed), **finishing_values(*finishing)},
                   captions=bool(captions))

    def _write(self, clip: audio.AudioChunk, number: int, fmt: str) -> tuple[Path, Path]:
        """The take as a wav for the player and a file in the chosen format for download."""
        self.sweep_scratch()
        player = self.takes_dir / f"take-{number}.wav"
        player.write_bytes(audio.encode(clip.samples, clip.sample_rate, "wav"))
        download = self.takes_dir / f"take-{number}.{audio.FORMATS[fmt][1]}"
        if fmt != "wav":
            download.write_bytes(audio.encode(clip.samples, clip.sample_rate, fmt))
        return player, download

    def _write_captions(self, chunks: list[audio.AudioChunk], stem: str) -> list[str]:
        """The chunks' cues as `<stem>.srt` and `<stem>.vtt` in the scratch folder; their paths."""
        cues = cues_of(chunks)
        paths = []
        for extension, write in CAPTION_FORMATS.items():
            path = self.takes_dir / f"{stem}.{extension}"
            path.write_text(write(cues), encoding="utf-8")
            paths.append(str(path))
        return paths

    def check_take(self, text: str, clip: str | None, voice_id: str | None, fmt: str, *values) -> list[dict]:
        """Gradio's validator before a take, with the take's inputs: the composer's refusal is shown at the control
        it concerns and the event does not start, so no error badge covers the last take."""
        params, (seed, language, model, captions) = values[:len(PARAMS)], values[len(PARAMS):len(PARAMS) + 4]
        takes, finishing = values[len(PARAMS) + 4], values[len(PARAMS) + 5:]  # the history, then Advanced's finishing
        wrong, message = -1, ""
        try:
            self.composer.compose(self.ask(text, clip, voice_id, params, seed, language, model, captions, finishing))
        except EngineError as error:
            log_refusal(error.message, error.code)
            wrong, message = self._input_of(error.param, voice_id), error.message
        checks = [gr.validate(index != wrong, message if index == wrong else "") for index in range(4 + len(values))]
        checks[TAKES_INPUT] = takes  # Gradio stores what a validator returns for a state: the history, unchanged
        return checks

    @staticmethod
    def _input_of(param: str | None, voice_id: str | None) -> int:
        """The position, among a take's inputs, of the control a refused parameter comes from."""
        named = {"voice": 2 if voice_id else 1, "seed": 4 + len(PARAMS), "language": 5 + len(PARAMS),
                 "model": 6 + len(PARAMS), "candidates": 9 + len(PARAMS), "trim": 10 + len(PARAMS),
                 "loudness": 11 + len(PARAMS), **{name: 4 + index for index, name in enumerate(PARAMS)}}
        return named.get(param, 0)

    def generate(self, text: str, clip: str | None, voice_id: str | None, fmt: str,
                 exaggeration: float, cfg_weight: float, temperature: float, top_p: float, min_p: float,
                 repetition_penalty: float, speed: float, seed: float | None, language: str | None, model: str | None,
                 captions: bool, takes: list[Take], request: gr.Request, candidate_count: float = 1,
                 trim: bool = False, loudness: float | str | None = None, progress=gr.Progress()):
        """Synthesize chunk by chunk with a progress bar; streams to the player where ffmpeg allows. Stop, a closed
        tab or a reload closes this generator at its next yield (one comes every HEARTBEAT_SECONDS), which cancels
        the job. The job is submitted only after a first yield: a Stop during the first step would cancel the event
        before Gradio has kept the generator, and nothing would close it."""
        params = (exaggeration, cfg_weight, temperature, top_p, min_p, repetition_penalty, speed)
        with readable_errors():
            synthesis = self.composer.compose(self.ask(text, clip, voice_id, params, seed, language, model, captions,
                                                       (candidate_count, trim and not captions, loudness)))
            picker = TakePicker(synthesis, checker_for(synthesis, self.recognizer))
        yield STILL_WORKING  # Gradio keeps this take once it has yielded: from then on, Stop closes it
        with readable_errors():
            job = self.engine.submit(picker.requests()[0])
        run = TakeInProgress(synthesis, job, fmt, self._voice_label(synthesis, voice_id), clip)
        session = request.session_hash if request else ""
        self._remember(session, run)
        with readable_errors(), closing(job.poll(HEARTBEAT_SECONDS)) as made:
            for chunk in made:
                if chunk is not None:
                    run.chunks.append(chunk)
                progress((len(run.chunks), job.chunks), desc=run.stage(), unit="chunk")
                if chunk is None:
                    yield STILL_WORKING
                    continue
                if STREAMING:
                    yield (chunk.sample_rate, chunk.samples), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if synthesis.candidates > 1:
            progress(None, desc=f"Hearing {synthesis.candidates} candidates")
            with readable_errors(), closing(candidates.other_candidates(self.engine, picker, job.seed,
                                                                        run.chunks)) as waiting:
                for _ in waiting:
                    yield STILL_WORKING
            run.picked = picker.picked()
        self.in_progress.pop(session, None)
        yield self._finish(run, takes)

    def _remember(self, session: str, run: "TakeInProgress") -> None:
        """Keep the session's latest take for Stop; a stopped tab that never asks is forgotten after RUNS_KEPT."""
        self.in_progress.pop(session, None)
        self.in_progress[session] = run
        while len(self.in_progress) > RUNS_KEPT:
            self.in_progress.pop(next(iter(self.in_progress)))

    def _voice_label(self, synthesis: SynthesisRequest, voice_id: str | None) -> str:
        """The voice as a person reads it: a library voice by its name."""
        if not voice_id:
            return synthesis.voice.describe()
        with readable_errors():
            return f"library voice '{self.engine.library.get(voice_id).name}'"

    def _finish(self, run: "TakeInProgress", takes: list[Take], stopped: bool = False) -> tuple:
        """The take (whole, or the chunks made before Stop) written, added to the history and shown."""
        whole = run.picked.clip if run.picked else finish(audio.join(run.chunks), run.synthesis)
        number = next(self._numbers)
        player, download = self._write(whole, number, run.fmt)
        job, synthesis = run.job, run.synthesis
        made = (f"Stopped after {len(run.chunks)} of {job.chunks} chunks; this partial take was kept"
                if stopped else f"{len(run.chunks)} chunk(s)")
        note = f"Seed used: **{job.seed}** · {run.voice_label} · {whole.duration:.1f} s of audio · {made}"
        if job.ignored_parameters or job.ignored_tags:
            note += f" · the model ignored {', '.join(job.ignored_parameters + job.ignored_tags)}"
        if run.picked:
            note += candidates.describe(run.picked, synthesis.candidates)
        downloads = [str(download)]
        if synthesis.captions:
            downloads += self._write_captions(list(run.picked.chunks) if run.picked else run.chunks, download.stem)
        voice_id = synthesis.voice.library_id
        take = Take(number, synthesis.text, run.voice_label, voice_id, None if voice_id else run.clip,
                    {**synthesis.parameters(), "seed": job.seed}, str(player), str(download))
        takes = history.add(takes, take)
        return (gr.skip() if STREAMING and not stopped and not needs_whole_clip(synthesis) else str(player), downloads,
                note, takes,
                gr.update(choices=history.choices(takes), value=number))

    def stop(self, takes: list[Take], request: gr.Request) -> tuple:
        """Say what Stop kept: nothing, or the chunks made so far as a partial take. (The take's job itself is
        cancelled by Gradio closing its generator.)"""
        run = self.in_progress.pop(request.session_hash if request else "", None)
        if run is None or run.job.stage == "done" and len(run.chunks) == run.job.chunks:
            return gr.skip(), gr.skip(), "Stopped.", gr.skip(), gr.skip()
        if not run.chunks:
            return None, None, "Stopped before any audio was made: nothing was kept.", gr.skip(), gr.skip()
        return self._finish(run, takes, stopped=True)

    # History

    def show_take(self, takes: list[Take], number: int | None) -> tuple:
        take = history.find(takes, number)
        if take is None:
            return None, None, ""
        return take.player_path, take.download_path, take.details()

    def load_take(self, takes: list[Take], number: int | None) -> list:
        """Put a take's text, voice and settings back into the controls."""
        take = history.find(takes, number)
        if take is None:
            raise refusal("Choose a take from the history first.")
        v = take.values
        return [take.text, take.reference, take.voice_id or "", *(v[p] for p in PARAMS), v["seed"],
                v.get("language") or "", v.get("model") or self.engine.config.model]

    # API

    def api_examples(self, voice_id: str | None, request: gr.Request) -> str:
        """The API tab's examples at the address this browser uses, with the chosen library voice."""
        local = f"http://{self.settings.host}:{self.settings.port}"
        return api_tab.examples(api_tab.base_url(request, local), self.engine.config.model, voice_id or None)

    def api_synthesize(self, text: str, reference: str | None = None, voice_id: str | None = None,
                       exaggeration: float | None = None, cfg_weight: float | None = None,
                       temperature: float | None = None, top_p: float | None = None, min_p: float | None = None,
                       repetition_penalty: float | None = None, speed: float | None = None,
                       seed: float | None = None, language: str | None = None, model: str | None = None,
                       output_format: str = "wav", captions: bool = False) -> tuple[str, list[str] | None]:
        """Synthesize `text` in a voice (a reference clip, or a library voice id, or the built-in one) to a file;
        a parameter left empty takes the model's default. With `captions`, also an .srt and a .vtt file, a cue per
        sentence."""
        params = (exaggeration, cfg_weight, temperature, top_p, min_p, repetition_penalty, speed)
        fmt = output_format or "wav"
        with readable_errors():
            if fmt not in audio.FORMATS:
                raise InvalidRequest(f"Unknown output_format '{fmt}'; use one of {', '.join(audio.FORMATS)}.")
            synthesis = self.composer.compose(self.ask(text, reference, voice_id, params, seed, language, model,
                                                       captions))
            job = self.engine.submit(synthesis)
            chunks = list(job)
        whole = audio.join(chunks)
        self.sweep_scratch()
        path = self.takes_dir / f"api-{next(self._numbers)}-seed{job.seed}.{audio.FORMATS[fmt][1]}"
        path.write_bytes(audio.encode(whole.samples, whole.sample_rate, fmt))
        return str(path), self._write_captions(chunks, path.stem) if captions else None

    def api_voices(self) -> list[dict]:
        """The saved voices of the library (the same library the HTTP API lists)."""
        return [v.to_dict() for v in self.engine.library.list()]

    def api_presets(self) -> dict[str, dict]:
        """Every preset and its parameter values."""
        return {name: self.presets.load(name) for name in self.preset_choices()}


LANGUAGE_CHOICES = [("Default (English)", "")] + [(f"{name} ({code})", code) for code, name in LANGUAGES.items()]
