"""The terminal front door: `app.py synth` speaks one text to a file, `app.py dataset` a phrase list to a Piper
training set."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine import PARAMETER_RANGES, Ask, RequestComposer, Voice, VoiceLibrary
from engine.placement import Placement, build_placement
from settings import Settings, add_global_flags


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `synth` and `dataset` to the subcommands of app.py's parser."""
    add_synth_command(commands)
    add_dataset_command(commands)


def add_synth_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("synth", help="synthesize text to an audio file")
    parser.add_argument("text", help="what to say ('-' reads standard input)")
    parser.add_argument("--voice", help="a reference clip (any common audio format), a library voice id, an OpenAI "
                                        "voice name or a language code")
    parser.add_argument("-o", "--output", default="out.wav",
                        help="output file; its extension picks the format (wav, mp3, flac, opus, aac, pcm)")
    parser.add_argument("--seed", type=int, help="same seed and inputs give identical audio")
    parser.add_argument("--language", help="language code for chatterbox-multilingual (en, fr, ms, zh, ...)")
    parser.add_argument("--captions", metavar="FILE",
                        help="also write captions, a cue per sentence timed to the audio (.srt or .vtt)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the chunks and pauses synthesis would make, without loading the model")
    add_parameter_flags(parser)
    add_global_flags(parser)
    parser.set_defaults(run=synth)


def add_dataset_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dataset", help="speak a phrase list in one voice as a Piper training set")
    parser.add_argument("--phrases", type=Path, required=True,
                        help="UTF-8 text, one phrase a line; or a .csv/.tsv with a text column")
    parser.add_argument("--column", default="text", help="the text column of a CSV or TSV phrase file")
    parser.add_argument("--voice", required=True, help="a reference clip, a library voice id, an OpenAI voice name "
                                                       "or a language code")
    parser.add_argument("--out", type=Path, required=True, help="output folder (metadata.csv and wavs/)")
    parser.add_argument("--language", help="language code for chatterbox-multilingual")
    parser.add_argument("--sample-rate", type=int, default=22050, help="wav sample rate (Piper uses 22050)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first phrase; phrase N uses seed+N")
    parser.add_argument("--resume", action="store_true", help="keep what the folder already holds and add the rest")
    parser.add_argument("--server", help="drive a running studio at this URL instead of loading the model here")
    parser.add_argument("--workers", type=int, default=2, help="concurrent requests with --server")
    parser.add_argument("--api-key", help="the studio's API key, with --server")
    add_verification_flags(parser)
    add_parameter_flags(parser)
    add_global_flags(parser)
    parser.set_defaults(run=make_dataset)


def add_verification_flags(parser: argparse.ArgumentParser) -> None:
    """How a dataset's takes are heard, made again and evened."""
    from dataset.runner import LOUDNESS, MAX_CER, RETAKES

    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                        help="transcribe every clip with the speech recognizer (--asr-model) and make again those "
                             "that say something else (default: on when a recognizer can be loaded)")
    parser.add_argument("--max-cer", type=float, default=MAX_CER,
                        help=f"highest character error rate a clip may have (default {MAX_CER}: a missing word fails, "
                             f"the recognizer's own small slips pass)")
    parser.add_argument("--retakes", type=int, default=RETAKES,
                        help=f"takes after the first, each with the next seed, for a refused clip (default {RETAKES})")
    parser.add_argument("--keep-failed", action="store_true",
                        help="list a phrase that never passes in metadata.csv anyway, with its best take")
    parser.add_argument("--loudness", type=float, default=LOUDNESS,
                        help=f"even every clip to this loudness in LUFS, EBU R128 (default {LOUDNESS:g})")


def add_parameter_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for each synthesis parameter; one left out is the model's own (or a library voice's saved value)."""
    for name, (low, high, default) in PARAMETER_RANGES.items():
        own = default if name == "speed" else f"{default} for English"
        parser.add_argument(f"--{name.replace('_', '-')}", type=float,
                            help=f"{low} to {high} (default: the model's own, {own})")
    parser.add_argument("--preset", help="a preset from the presets folder (calm, narration, ...); flags given win")


def parameters_from(args: argparse.Namespace) -> dict:
    """The synthesis parameters the flags gave."""
    return {name: getattr(args, name) for name in PARAMETER_RANGES if getattr(args, name) is not None}


def build_engine(settings: Settings) -> Placement:
    """The engine where the settings place it: this process, Ray Serve replicas, or ZeroGPU."""
    return build_placement(settings.engine, settings.placement)


def composer_for(settings: Settings, library: VoiceLibrary) -> RequestComposer:
    """The terminal's composer: the studio's presets, and no input limit (a chapter is fine here)."""
    return RequestComposer(settings.engine, library, settings.presets(settings.engine))


def ask_from(args: argparse.Namespace, text: str) -> Ask:
    """What the flags ask for; `--voice` is a clip when a file of that name exists, else a voice name."""
    clip = Voice.from_file(args.voice).clip if args.voice and Path(args.voice).is_file() else None
    return Ask(text, voice=None if clip else args.voice, clip=clip, language=args.language, preset=args.preset,
               values={**parameters_from(args), "seed": args.seed}, captions=bool(getattr(args, "captions", None)))


def synth(args: argparse.Namespace) -> int:
    """The `synth` command: one request, a progress bar over chunks, a file in the format its name asks for."""
    from tqdm import tqdm

    from engine import EngineError, audio
    from engine.pipeline import preview
    from engine.text.captions import CAPTION_FORMATS, caption_format, cues_of

    text = sys.stdin.read() if args.text == "-" else args.text
    try:
        fmt = audio.format_for_path(args.output)
        caption_fmt = caption_format(args.captions) if args.captions else None
        settings = Settings.from_args(args)
        if args.dry_run:
            request = composer_for(settings, VoiceLibrary(settings.engine.voices_dir)).compose(ask_from(args, text))
            print("\n".join(preview(request, settings.engine)))
            return 0
        engine = build_engine(settings)
        request = composer_for(settings, engine.library).compose(ask_from(args, text))
        job = engine.submit(request)
        if ignored := job.ignored_parameters + job.ignored_tags:
            print(f"note: {request.model or args.model} ignores {', '.join(ignored)}", file=sys.stderr)
        chunks = []
        with tqdm(desc="Synthesizing", unit="chunk", file=sys.stderr) as bar:
            for chunk in job:
                bar.total = chunk.total
                bar.set_postfix_str(f"{sum(c.duration for c in chunks) + chunk.duration:.1f} s of audio")
                bar.update(1)
                chunks.append(chunk)
        clip = audio.join(chunks)
        Path(args.output).write_bytes(audio.encode(clip.samples, clip.sample_rate, fmt))
        if caption_fmt:
            Path(args.captions).write_text(CAPTION_FORMATS[caption_fmt](cues_of(chunks)), encoding="utf-8")
    except EngineError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    captioned = f" and {args.captions}" if caption_fmt else ""
    print(f"Wrote {args.output}{captioned}: {clip.duration:.2f} s, {len(chunks)} chunk(s), seed {job.seed}")
    return 0


def verification_from(args: argparse.Namespace, language: str | None):
    """How the flags ask takes to be heard; raises InvalidRequest when --verify asks for a recognizer there is not."""
    from dataset.runner import Verification
    from engine import InvalidRequest
    from engine.quality import recognizer_for

    if not 0 <= args.max_cer <= 10 or not 0 <= args.retakes <= 20:
        raise InvalidRequest("--max-cer must be from 0 to 10 and --retakes from 0 to 20.", "max_cer")
    checker = None
    if args.verify is not False:
        recognizer = recognizer_for(args.asr_model, args.device)
        checker = recognizer.checker()
        if checker is None and args.verify:
            raise InvalidRequest(f"--verify needs a speech recognizer, and {recognizer.reason}. Give --asr-model DIR "
                                 f"(a faster-whisper folder), or leave out --verify.", "verify")
        if checker is None:
            print(f"Clips are not verified: {recognizer.reason}.", file=sys.stderr)
    return Verification(checker, args.max_cer, args.retakes, args.keep_failed, language)


def make_dataset(args: argparse.Namespace) -> int:
    """The `dataset` command: a Piper (LJSpeech-style) folder, resumable, with failures recorded."""
    from tqdm import tqdm

    from dataset import DatasetRun, EngineSpeaker, HttpSpeaker, read_phrases
    from engine import EngineError, SynthesisRequest
    from engine.voices import sanitize_id

    try:
        phrase_list = read_phrases(args.phrases, args.column)
        if args.out.exists() and any(args.out.iterdir()) and not args.resume:
            print(f"error: {args.out} is not empty; add --resume to continue it, or pick a new --out.", file=sys.stderr)
            return 2
        parameters = parameters_from(args)
        model = args.model
        voice_name = Path(sanitize_id(Path(args.voice).name)).stem
        if args.server:
            if Path(args.voice).is_file():
                print("error: with --server, --voice must be a voice id on that server "
                      "(create one with POST /api/create_speaker).", file=sys.stderr)
                return 2
            SynthesisRequest("check", model=model, language=args.language, **parameters)  # the ranges, before a call
            request_fields = {**parameters, "model": model, **({"language": args.language} if args.language else {}),
                              **({"preset": args.preset} if args.preset else {})}
            speaker = HttpSpeaker(args.server, args.voice, request_fields, args.api_key)
        else:
            settings = Settings.from_args(args)
            engine = build_engine(settings)
            speaker = EngineSpeaker(engine, composer_for(settings, engine.library), ask_from(args, ""))
            model = speaker.request(phrase_list.phrases[0], args.seed).model or model  # refused here, not per phrase
        language = args.language if args.server else speaker.request(phrase_list.phrases[0], args.seed).language
        verification = verification_from(args, language)
        run = DatasetRun(args.out, voice_name, args.sample_rate, args.seed, verification, args.loudness)
    except EngineError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    if phrase_list.blank or phrase_list.duplicates:
        print(f"Skipped {phrase_list.blank} blank line(s) and {len(phrase_list.duplicates)} duplicate(s).",
              file=sys.stderr)
    started = time.monotonic()
    with tqdm(total=len(phrase_list.phrases), initial=len(run.done()), desc="Dataset", unit="phrase",
              file=sys.stderr) as bar:
        try:
            summary = run.run(speaker, phrase_list.phrases, args.workers if args.server else 1, bar.update)
        except KeyboardInterrupt:
            print("\nStopped. Finished items are kept; continue with --resume.", file=sys.stderr)
            return 130
    on_ray = Settings.from_args(args).placement.on_ray
    run.describe(summary, model=model, language=args.language, parameters=parameters,
                 source=args.server or ("ray" if on_ray else "in-process"), phrases=str(args.phrases),
                 voice_source=args.voice, seconds_taken=round(time.monotonic() - started, 1))
    print(f"{args.out}: {summary['items']} items, {summary['total_audio_seconds']} s of audio "
          f"({summary['new_audio_seconds']} s new), "
          f"{summary['failures']} failure(s)" + (f" (see {args.out / 'failures.csv'})" if summary["failures"] else ""))
    return 1 if summary["failures"] else 0
