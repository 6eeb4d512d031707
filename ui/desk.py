"""The voice-cloning desk: text, a voice by microphone or upload, two sliders, listen, download."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from engine import PARAMETER_RANGES, Engine, EngineError, SynthesisRequest, Voice


def _slider(name: str, label: str, step: float = 0.05) -> gr.Slider:
    low, high, default = PARAMETER_RANGES[name]
    return gr.Slider(low, high, value=default, step=step, label=label)


def build_desk(engine: Engine, settings) -> gr.Blocks:
    """The Blocks app; its `synthesize` event is Gradio's named API endpoint `/synthesize`."""

    def synthesize(text: str, reference: str | None, exaggeration: float, cfg_weight: float,
                   seed: float | None, progress=gr.Progress()):
        voice = Voice.from_file(reference) if reference else Voice.builtin()
        try:
            request = SynthesisRequest(text or "", voice=voice, exaggeration=exaggeration, cfg_weight=cfg_weight,
                                       seed=None if seed in (None, "", -1) else int(seed))
            job = engine.submit(request)
            chunks = []
            for chunk in job:
                chunks.append(chunk)
                progress((chunk.index + 1, chunk.total), desc="Synthesizing", unit="chunk")
        except EngineError as error:
            raise gr.Error(error.message) from None
        samples = np.concatenate([c.samples for c in chunks])
        return (chunks[0].sample_rate, samples), job.seed

    with gr.Blocks(title="Chatterbox Studio") as desk:
        gr.Markdown("# Chatterbox Studio\nType text, give a voice (record or upload a few seconds), listen, download.")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", lines=6, placeholder="What should the voice say?")
                reference = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Reference voice")
                exaggeration = _slider("exaggeration", "Exaggeration")
                cfg_weight = _slider("cfg_weight", "CFG / pace")
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 picks one)")
                generate = gr.Button("Generate", variant="primary")
            with gr.Column():
                output = gr.Audio(label="Output", type="numpy", interactive=False)
                seed_used = gr.Number(label="Seed used", interactive=False)
        generate.click(synthesize, [text, reference, exaggeration, cfg_weight, seed], [output, seed_used],
                       api_name="synthesize")
    return desk
