"""The Dataset tab: a phrase file and a voice in, a Piper training set (zip) out."""

from __future__ import annotations

import queue
import re
import shutil
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr

from dataset import DatasetRun, EngineSpeaker, read_phrases
from engine import Ask, Cancelled, Engine, RequestComposer, Voice

from .handlers import HEARTBEAT_SECONDS, readable_errors, refusal

_END = object()


def _folder_name(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", label).strip("._") or "dataset"


def _in_background(items: Callable[[], Iterator[float]]) -> Iterator[float | None]:
    """The items of `items()`, made in a thread of its own, and None after each HEARTBEAT_SECONDS without one, so
    that Gradio can close the event iterating this (Stop, a closed tab) at its next yield. Closing this stops
    waiting; the speaker's own stop() ends the work."""
    made: queue.Queue = queue.Queue()

    def produce() -> None:
        try:
            for item in items():
                made.put(item)
        except Cancelled:
            pass
        except BaseException as error:  # handed to the event, which shows it
            made.put(error)
        finally:
            made.put(_END)

    threading.Thread(target=produce, name="dataset-tab", daemon=True).start()
    while True:
        try:
            item = made.get(timeout=HEARTBEAT_SECONDS)
        except queue.Empty:
            yield None
            continue
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def build_dataset_tab(engine: Engine, composer: RequestComposer, datasets_dir: Path, voice_choices) -> None:
    """Lay out the tab inside the current Blocks context; `voice_choices()` gives (label, id) pairs."""

    def library_only():
        return gr.update(choices=[(label, vid) for label, vid in voice_choices() if vid], value=None)

    with gr.Tab("Dataset") as tab:
        gr.Markdown("Speak a list of phrases in one voice and get a Piper training set: `metadata.csv` and `wavs/`.")
        with gr.Row():
            phrases = gr.File(label="Phrase file (.txt one per line, or .csv/.tsv with a 'text' column)",
                              file_types=[".txt", ".csv", ".tsv"], type="filepath", elem_id="dataset-phrases")
            with gr.Column():
                library_voice = gr.Dropdown(choices=[], value=None, label="Library voice")
                clip = gr.Audio(sources=["upload", "microphone"], type="filepath", label="...or a reference clip",
                                elem_id="dataset-clip")
        with gr.Row():
            name = gr.Textbox(value="my-voice", label="Dataset name", elem_id="dataset-name")
            rate = gr.Dropdown(choices=[16000, 22050, 24000], value=22050, label="Sample rate")
            resume = gr.Checkbox(value=True, label="Resume what this dataset already holds")
        with gr.Row():
            start = gr.Button("Start", variant="primary", elem_id="dataset-start")
            stop = gr.Button("Stop", variant="stop", elem_id="dataset-stop")
        status = gr.Markdown(elem_id="dataset-status")
        archive = gr.File(label="Download", interactive=False, elem_id="dataset-zip")

        def generate(phrase_file, voice_id, clip_path, label, sample_rate, keep, progress=gr.Progress()):
            if not phrase_file:
                raise refusal("Upload a phrase file first.")
            if not (voice_id or clip_path):
                raise refusal("Pick a library voice or give a reference clip.")
            with readable_errors():
                phrase_list = read_phrases(Path(phrase_file))
                ask = Ask("", voice=voice_id) if voice_id else Ask("", clip=Voice.from_file(clip_path).clip)
                speaker = EngineSpeaker(engine, composer, ask)
                asked = speaker.request(phrase_list.phrases[0], 0)
                voice_name = _folder_name(engine.library.get(voice_id).name if voice_id else label)
            yield gr.skip(), gr.skip()  # Gradio keeps this event once it has yielded: from then on, Stop closes it
            out = datasets_dir / _folder_name(label)
            if out.exists() and not keep:
                shutil.rmtree(out)
            run = DatasetRun(out, voice_name, int(sample_rate))
            todo = run.pending(phrase_list.phrases)
            skipped, total = len(phrase_list.phrases) - len(todo), len(phrase_list.phrases)
            seconds, done, started = 0.0, skipped, time.monotonic()
            progress((done, total), desc="Speaking phrases", unit="phrase")
            try:
                with readable_errors(), closing(_in_background(lambda: run.made(speaker, todo))) as made:
                    for item in made:
                        if item is None:
                            yield gr.skip(), gr.skip()
                            continue
                        seconds, done = seconds + item, done + 1
                        progress((done, total), desc="Speaking phrases", unit="phrase")
                        yield f"{done} of {total} phrases; {len(run.failures())} failed.", None
            finally:
                speaker.stop()  # on Stop or a closed tab, the request in flight ends within a token
            summary = run.summary(skipped, seconds)
            run.describe(summary, source="studio", model=asked.model or engine.config.model,
                         parameters=asked.parameters(), seconds_taken=round(time.monotonic() - started, 1))
            zipped = shutil.make_archive(str(out), "zip", root_dir=out)
            yield (f"Done: {summary['items']} items, {summary['total_audio_seconds']} s of audio, "
                   f"{summary['failures']} failed."), zipped

        def stopped(label):
            """What Stop kept: the phrases already in the folder (Start again resumes from there)."""
            out = datasets_dir / _folder_name(label)
            kept = len(DatasetRun(out, "").done()) if out.exists() else 0
            return f"Stopped: {kept} phrases are kept. Start again to resume.", None

        event = start.click(generate, [phrases, library_voice, clip, name, rate, resume], [status, archive],
                            concurrency_limit=1, api_visibility="private")  # one build at a time: folders are shared
        stop.click(stopped, name, [status, archive], cancels=[event], queue=False, api_visibility="private")
        tab.select(library_only, None, library_voice, api_visibility="private")
