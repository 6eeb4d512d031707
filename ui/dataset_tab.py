"""The Dataset tab: a phrase file and a voice in, a Piper training set (zip) out."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import gradio as gr

from dataset import DatasetRun, EngineSpeaker, read_phrases
from engine import Ask, Engine, EngineError, RequestComposer, Voice


def _folder_name(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", label).strip("._") or "dataset"


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
            stop = gr.Button("Stop", variant="stop")
        status = gr.Markdown(elem_id="dataset-status")
        archive = gr.File(label="Download", interactive=False, elem_id="dataset-zip")

        def generate(phrase_file, voice_id, clip_path, label, sample_rate, keep, progress=gr.Progress()):
            if not phrase_file:
                raise gr.Error("Upload a phrase file first.")
            if not (voice_id or clip_path):
                raise gr.Error("Pick a library voice or give a reference clip.")
            try:
                phrase_list = read_phrases(Path(phrase_file))
                ask = Ask("", voice=voice_id) if voice_id else Ask("", clip=Voice.from_file(clip_path).clip)
            except EngineError as error:
                raise gr.Error(error.message) from None
            out = datasets_dir / _folder_name(label)
            if out.exists() and not keep:
                shutil.rmtree(out)
            run = DatasetRun(out, Path(voice_id).stem if voice_id else _folder_name(label), int(sample_rate))
            todo = run.pending(phrase_list.phrases)
            skipped = len(phrase_list.phrases) - len(todo)
            speaker = EngineSpeaker(engine, composer, ask)
            seconds, started = 0.0, time.monotonic()
            progress((skipped, len(phrase_list.phrases)), desc="Speaking phrases", unit="phrase")
            for done, made in enumerate(run.made(speaker, todo), start=1):
                seconds += made
                progress((skipped + done, len(phrase_list.phrases)), desc="Speaking phrases", unit="phrase")
                yield f"{skipped + done} of {len(phrase_list.phrases)} phrases; {len(run.failures())} failed.", None
            summary = run.summary(skipped, seconds)
            run.describe(summary, source="studio", seconds_taken=round(time.monotonic() - started, 1))
            zipped = shutil.make_archive(str(out), "zip", root_dir=out)
            yield (f"Done: {summary['items']} items, {summary['total_audio_seconds']} s of audio, "
                   f"{summary['failures']} failed."), zipped

        event = start.click(generate, [phrases, library_voice, clip, name, rate, resume], [status, archive],
                            concurrency_limit=1, api_visibility="private")  # one build at a time: folders are shared
        stop.click(None, cancels=[event], api_visibility="private")
        tab.select(library_only, None, library_voice, api_visibility="private")
