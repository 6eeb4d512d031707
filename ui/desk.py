"""The voice-cloning desk's layout and wiring; the callbacks live in ui/handlers.py."""

from __future__ import annotations

import gradio as gr

from engine import MODELS, PARAMETER_RANGES, Engine, audio
from engine.models import VARIANTS
from settings import Settings

from .dataset_tab import build_dataset_tab
from .handlers import (AS_MADE, DOWNLOAD_FORMATS, LABELS, LANGUAGE_CHOICES, LOUDNESS_CHOICES, PARAMS,
                       SCRATCH_MAX_AGE_SECONDS, STREAMING, Handlers, random_seed)

PRIVATE = {"api_visibility": "private"}

TAGS_HELP = "\n".join([
    "- `[pause:1.5s]` or `[pause:500ms]`: that much silence, exactly (speed does not change it); a chunk ends there.",
    *(f"- Sounds {spec.name} performs: {' '.join(f'`[{tag}]`' for tag in spec.sound_tags)}."
      for spec in VARIANTS.values() if spec.sound_tags),
    "- A model that does not perform a sound leaves it unsaid, and the note under the take says so.",
    "- Other square brackets (`[1]`, `[sic]`) are read as text."])

CONFIRM_DELETE_JS = """(voice) => (voice && !confirm("Delete this saved voice for good? Its clip leaves the library."))
  ? null : voice"""

CTRL_ENTER_JS = """() => {
  if (window.__studioKeys) return;
  window.__studioKeys = true;
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.closest("#studio-text")) {
      event.preventDefault();
      document.querySelector("#generate-button")?.click();
    }
  });
}"""


def _slider(name: str, **kwargs) -> gr.Slider:
    low, high, default = PARAMETER_RANGES[name]
    label, info, step = LABELS[name]
    return gr.Slider(low, high, value=default, step=step, label=label, info=info, elem_id=f"slider-{name}", **kwargs)


def build_desk(engine: Engine, settings: Settings) -> gr.Blocks:
    """The Blocks app: the desk, the API tab, and Gradio API endpoints /synthesize, /voices and /presets."""
    h = Handlers(engine, settings)
    with gr.Blocks(title="Chatterbox Studio", delete_cache=(3600, SCRATCH_MAX_AGE_SECONDS)) as desk:
        takes = gr.State([])
        gr.Markdown("# Chatterbox Studio\nType, give a voice (record or upload 5–10 s of speech), "
                    "move the sliders, listen.")
        engine_status = gr.Markdown(elem_id="engine-status")
        with gr.Tab("Studio"):
            with gr.Row():
                with gr.Column(scale=3):
                    text = gr.Textbox(label="Text", lines=8, max_lines=30, elem_id="studio-text",
                                      placeholder="What should the voice say? Long texts are fine. "
                                                  "Ctrl/Cmd+Enter generates.")
                    text_count = gr.Markdown(elem_id="text-count")
                    with gr.Accordion("How the text will be chunked", open=False):
                        chunk_preview = gr.Markdown(elem_id="chunk-preview")
                    with gr.Accordion("Tags you can write in the text", open=False):
                        gr.Markdown(TAGS_HELP)
                    reference = gr.Audio(sources=["upload", "microphone"], type="filepath", elem_id="reference",
                                         label="Reference voice: record or upload")
                    with gr.Row():
                        trim = gr.Button("✂ Trim silence, keep 10 s", size="sm")
                    clip_note = gr.Markdown(h.clip_report(None))
                    with gr.Accordion("Voice library", open=True):
                        voice = gr.Dropdown(h.voice_choices(), value="", label="Saved voice", elem_id="voice-select",
                                            info="A saved voice is used instead of the clip above.")
                        voice_name = gr.Textbox(label="Name", placeholder="e.g. Ana, warm", elem_id="voice-name")
                        with gr.Row():
                            save_voice = gr.Button("Save this voice", elem_id="save-voice")
                            rename_voice = gr.Button("Rename")
                            delete_voice = gr.Button("Delete", variant="stop")
                        library_note = gr.Markdown(elem_id="library-note")
                with gr.Column(scale=2):  # Generate first: beside the text on a wide screen, after the voice on a phone
                    with gr.Row():
                        generate = gr.Button("▶ Generate", variant="primary", elem_id="generate-button")
                        stop = gr.Button("■ Stop", variant="stop", elem_id="stop-button")
                    output = gr.Audio(label="Output", type="filepath", interactive=False, streaming=STREAMING,
                                      autoplay=STREAMING, elem_id="output-audio")
                    download = gr.File(label="Download", file_count="multiple", elem_id="download")
                    seed_note = gr.Markdown(elem_id="seed-note")
                    fmt = gr.Radio(list(DOWNLOAD_FORMATS), value="mp3", label="Download format")
                    captions = gr.Checkbox(False, label="Captions (.srt and .vtt): a cue per sentence",
                                           info="Each sentence is made on its own, so its cue is timed to its audio.",
                                           elem_id="captions")
                    preset_choices = h.preset_choices()
                    preset = gr.Dropdown(preset_choices, value="neutral" if "neutral" in preset_choices else None,
                                         label="Preset", elem_id="preset")
                    sliders = {name: _slider(name) for name in PARAMS[:2]}
                    with gr.Accordion("Advanced", open=False):
                        sliders.update({name: _slider(name) for name in PARAMS[2:]})
                        with gr.Row():
                            seed = gr.Number(-1, precision=0, label="Seed (-1: a new one each run)", minimum=-1)
                            dice = gr.Button("Randomize", size="sm")
                        language = gr.Dropdown(LANGUAGE_CHOICES, value="", label="Language (multilingual model)")
                        model = gr.Dropdown(list(MODELS), value=engine.config.model, label="Model variant",
                                            elem_id="model-select")
                        variant_note = gr.Markdown()
                        with gr.Row():
                            candidate_count = gr.Slider(1, 8, value=1, step=1, label="Candidates",
                                                        info="Takes of each chunk; the speech recognizer keeps the "
                                                             "one that says the text best.", elem_id="candidates")
                            trim_edges = gr.Checkbox(value=True, label="Trim non-speech at the edges",
                                                     info="Not with captions, whose cues are timed to the take as "
                                                          "made.", elem_id="trim-edges")
                            loudness = gr.Dropdown(LOUDNESS_CHOICES, value=AS_MADE, allow_custom_value=True,
                                                   label="Even loudness to", info="Or type a number of LUFS.",
                                                   elem_id="loudness")
                        with gr.Row():
                            preset_name = gr.Textbox(label="Preset name", placeholder="e.g. my-audiobook")
                            save_preset = gr.Button("Save current settings as preset", size="sm")
                        preset_note = gr.Markdown()
                    with gr.Accordion("History of this session", open=False):
                        pick = gr.Dropdown([], value=None, label="Take", elem_id="history-pick")
                        take_audio = gr.Audio(type="filepath", interactive=False, label="Replay")
                        take_file = gr.File(label="Download this take")
                        take_details = gr.Markdown()
                        load_take = gr.Button("↩ Load into the controls")
        build_dataset_tab(engine, h.composer, settings.engine.data_dir / "datasets", h.voice_choices)
        with gr.Tab("API"):
            api_examples = gr.Markdown(elem_id="api-examples")

        params = [sliders[name] for name in PARAMS]
        gr.on([text.change, language.change, model.change, captions.change], h.text_info,
              [text, language, model, captions], [text_count, chunk_preview], show_progress="hidden",
              trigger_mode="always_last", queue=False, **PRIVATE)
        reference.change(h.clip_report, reference, clip_note, show_progress="hidden", **PRIVATE)
        for event in (reference.upload, reference.stop_recording):
            event(lambda: "", None, voice, **PRIVATE)
        trim.click(h.trim, reference, reference, **PRIVATE)
        save_voice.click(h.save_voice, [reference, voice_name, language, *params], [voice, library_note], **PRIVATE)
        rename_voice.click(h.rename_voice, [voice, voice_name], [voice, library_note], **PRIVATE)
        delete_voice.click(h.delete_voice, voice, [voice, library_note], js=CONFIRM_DELETE_JS, **PRIVATE)
        voice.input(h.voice_settings, voice, params, **PRIVATE)
        preset.input(h.apply_preset, preset, [*params, seed], **PRIVATE)
        gr.on([slider.input for slider in params], lambda: None, None, preset, queue=False,
              show_progress="hidden", **PRIVATE)  # moved by hand: no longer the preset's values
        save_preset.click(h.save_preset, [preset_name, *params], [preset, preset_note], **PRIVATE)
        dice.click(random_seed, None, seed, **PRIVATE)
        model.change(h.variant_controls, model, [*params, language, variant_note], **PRIVATE)
        model.input(h.variant_defaults, model, params, **PRIVATE)

        take_outputs = [output, download, seed_note, takes, pick]
        synthesis = gr.on([generate.click], h.generate,
                          [text, reference, voice, fmt, *params, seed, language, model, captions, takes,
                           candidate_count, trim_edges, loudness], take_outputs,
                          concurrency_id="synthesis", show_progress_on=[output], validator=h.check_take, **PRIVATE)
        synthesis.then(h.engine_status, None, engine_status, show_progress="hidden", **PRIVATE)
        stop.click(h.stop, [takes], take_outputs, cancels=[synthesis], queue=False, **PRIVATE)
        pick.change(h.show_take, [takes, pick], [take_audio, take_file, take_details], **PRIVATE)
        load_take.click(h.load_take, [takes, pick], [text, reference, voice, *params, seed, language, model],
                        **PRIVATE)

        desk.load(None, js=CTRL_ENTER_JS, **PRIVATE)
        desk.load(h.engine_status, None, engine_status, **PRIVATE)
        desk.load(h.api_examples, voice, api_examples, **PRIVATE)
        voice.change(h.api_examples, voice, api_examples, show_progress="hidden", **PRIVATE)
        desk.load(h.refresh_voices, None, voice, **PRIVATE)
        desk.load(h.variant_controls, model, [*params, language, variant_note], **PRIVATE)
        desk.load(h.variant_defaults, model, params, **PRIVATE)
        _api_endpoints(h)
    return desk


def _api_endpoints(h: Handlers) -> None:
    """Gradio's public API: /synthesize (hidden components of its own), /voices and /presets."""
    with gr.Column(visible=False):
        inputs = [
            gr.Textbox(label="text"),
            gr.Audio(type="filepath", label="reference"),
            gr.Textbox("", label="voice_id"),
            *(gr.Number(None, label=name) for name in PARAMS),  # empty: the saved voice's, else the model's own
            gr.Number(-1, precision=0, label="seed"),
            gr.Textbox("", label="language"),
            gr.Textbox("", label="model"),
            gr.Dropdown(list(audio.FORMATS), value="wav", label="output_format"),
            gr.Checkbox(False, label="captions"),
        ]
        results = [gr.File(label="audio"), gr.File(label="captions", file_count="multiple")]
        trigger = gr.Button(visible=False)
    trigger.click(h.api_synthesize, inputs, results, api_name="synthesize", concurrency_id="synthesis")
    gr.api(h.api_voices, api_name="voices")
    gr.api(h.api_presets, api_name="presets")
