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
from dataset.runner import Verification
from engine import Ask, Cancelled, Engine, RequestComposer, Voice
from engine.quality import recognizer_for

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


SCORE_HEADERS = ["name", "passed", "character error rate", "heard", "expected"]


def score_rows(run: DatasetRun) -> list[list]:
    """A row per clip the recognizer heard: the listed ones, then the refused ones."""
    texts = run.done()
    listed = [[name, "yes", float(row["cer"]), row["transcript"], texts[name]] for name, row in run.scores().items()]
    failed = [[row["name"], "no", float(row["cer"]) if row.get("cer") else None, row.get("transcript", ""),
               row["text"]] for row in run.failures()]
    return listed + failed


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
        with gr.Accordion("Scores: what the speech recognizer heard", open=False):
            scores = gr.Dataframe(headers=SCORE_HEADERS, interactive=False, wrap=True, elem_id="dataset-scores")
            with gr.Row():
                refused = gr.Dropdown([], value=None, label="Refused phrase", elem_id="dataset-refused")
                refused_audio = gr.Audio(type="filepath", interactive=False, label="Its best take")

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
            checker = recognizer_for(engine.config.asr_model, engine.config.device).checker()
            yield gr.skip(), gr.skip()  # Gradio keeps this event once it has yielded: from then on, Stop closes it
            out = datasets_dir / _folder_name(label)
            if out.exists() and not keep:
                shutil.rmtree(out)
            run = DatasetRun(out, voice_name, int(sample_rate), verification=Verification(checker,
                                                                                           language=asked.language))
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
            heard = summary["scores"]
            scored = (f" Median character error rate {heard['median']}, worst {heard['max']}." if heard else
                      " Not heard: no speech recognizer." if checker is None else "")
            yield (f"Done: {summary['items']} items, {summary['total_audio_seconds']} s of audio, "
                   f"{summary['failures']} failed.{scored}"), zipped

        def stopped(label):
            """What Stop kept: the phrases already in the folder (Start again resumes from there)."""
            out = datasets_dir / _folder_name(label)
            kept = len(DatasetRun(out, "").done()) if out.exists() else 0
            return f"Stopped: {kept} phrases are kept. Start again to resume.", None

        def show_scores(label):
            """The scores of the dataset's clips and its refused phrases, to listen to."""
            out = datasets_dir / _folder_name(label)
            if not out.exists():
                return [], gr.update(choices=[], value=None)
            run = DatasetRun(out, "")
            rows = score_rows(run)
            names = [row["name"] for row in run.failures() if (run.refused_dir / f"{row['name']}.wav").exists()]
            return rows, gr.update(choices=names, value=None)

        def play_refused(label, name):
            path = datasets_dir / _folder_name(label) / "refused" / f"{name}.wav"
            return str(path) if name and path.exists() else None

        event = start.click(generate, [phrases, library_voice, clip, name, rate, resume], [status, archive],
                            concurrency_limit=1, api_visibility="private")  # one build at a time: folders are shared
        event.then(show_scores, name, [scores, refused], api_visibility="private")
        stop.click(stopped, name, [status, archive], cancels=[event], queue=False, api_visibility="private")
        refused.change(play_refused, [name, refused], refused_audio, api_visibility="private")
        tab.select(library_only, None, library_voice, api_visibility="private")
