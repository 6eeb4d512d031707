"""One Wyoming connection: the events a client sends, and the audio the engine makes for them.

Events are read as they come while a speaker task answers them in order, so a streamed text's next pieces arrive
while its first sentence is spoken, and a client that hangs up is noticed at once: its work is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.server import AsyncEventHandler
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped,
                         SynthesizeVoice)

from engine import Ask, Engine, EngineError, Job, RequestComposer
from engine.audio import to_pcm16
from engine.text import finished_sentences

from .catalog import describe

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how long a worker thread waits for the next chunk before it looks again
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM
CHANNELS = 1
_FINISHED = object()  # what the job's chunk iterator gives once the job is done


@dataclass(frozen=True)
class Utterance:
    """A text to speak in a voice; `whole` when it is a request of its own (then its audio ends with it), not one
    sentence of a streamed text."""

    text: str
    voice: SynthesizeVoice | None
    whole: bool


@dataclass(frozen=True)
class StreamEnd:
    """The end of a streamed text: its audio ends, then `synthesize-stopped`."""


def ask_for(utterance: Utterance) -> Ask:
    """The composer's terms for an utterance: a voice by name, else the built-in voice in a language."""
    voice = utterance.voice or SynthesizeVoice()
    return Ask(utterance.text, voice=voice.name, language=None if voice.name else voice.language)


class StudioEventHandler(AsyncEventHandler):
    """A Wyoming client's connection to the studio."""

    def __init__(self, engine: Engine, composer: RequestComposer, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.engine = engine
        self.composer = composer
        self.pending: asyncio.Queue[Utterance | StreamEnd] = asyncio.Queue()
        self.speaker = asyncio.create_task(self._speak_in_order())
        self.stream: SynthesizeStart | None = None  # the streamed text under way, if any
        self.unspoken = ""  # its text not yet spoken: the start of a sentence still arriving
        self.audio_open = False  # audio-start sent, audio-stop not yet

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(describe(self.engine).event())
        elif SynthesizeStart.is_type(event.type):
            self.stream, self.unspoken = SynthesizeStart.from_event(event), ""
        elif SynthesizeChunk.is_type(event.type) and self.stream:
            self._queue_finished_sentences(self.unspoken + SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type) and self.stream:
            self._queue_finished_sentences(self.unspoken + "\n\n")  # the text's end ends its last sentence
            self.pending.put_nowait(StreamEnd())
            self.stream = None
        elif Synthesize.is_type(event.type) and not self.stream:  # within a stream it repeats the text: ignored
            synthesize = Synthesize.from_event(event)
            self.pending.put_nowait(Utterance(synthesize.text, synthesize.voice, whole=True))
        return True

    async def disconnect(self) -> None:
        """The client hung up: what it asked for and has not heard is cancelled."""
        self.speaker.cancel()

    def _queue_finished_sentences(self, text: str) -> None:
        """Queue each sentence of the stream that is whole; keep the rest for the next piece."""
        language = self.stream.voice.language if self.stream.voice else None
        sentences, self.unspoken = finished_sentences(text, language)
        for sentence in sentences:
            self.pending.put_nowait(Utterance(sentence, self.stream.voice, whole=False))

    async def _speak_in_order(self) -> None:
        try:
            while True:
                item = await self.pending.get()
                if isinstance(item, StreamEnd):
                    await self._end_audio()
                    await self.write_event(SynthesizeStopped().event())
                elif not await self._speak(item):
                    await self.stop()
                    return
        except (ConnectionError, OSError):  # the client went away while it was being answered
            pass
        except Exception:  # a fault of the studio's: said once, and the client is not left waiting
            log.exception("A Wyoming request failed")
            await self.stop()

    async def _speak(self, utterance: Utterance) -> bool:
        """Speak `utterance` as audio events; on an engine error send an `error` event and return False."""
        try:
            job = self.engine.submit(self.composer.compose(ask_for(utterance)))
        except EngineError as error:
            return await self._refuse(error)
        try:
            await self._relay(job)
        except EngineError as error:
            return await self._refuse(error)
        finally:
            job.cancel()  # a no-op once the job is done; otherwise the client left, or the job failed
        if utterance.whole:
            await self._end_audio()
        return True

    async def _relay(self, job: Job) -> None:
        """Each chunk of `job` as an audio-chunk event as soon as the engine makes it."""
        chunks = job.poll(POLL_SECONDS)
        while (chunk := await asyncio.to_thread(next, chunks, _FINISHED)) is not _FINISHED:
            if chunk is None:
                continue
            if not self.audio_open:
                await self.write_event(AudioStart(chunk.sample_rate, SAMPLE_WIDTH, CHANNELS).event())
                self.audio_open = True
            pcm = to_pcm16(chunk.samples).tobytes()
            await self.write_event(AudioChunk(chunk.sample_rate, SAMPLE_WIDTH, CHANNELS, pcm).event())

    async def _end_audio(self) -> None:
        if self.audio_open:
            await self.write_event(AudioStop().event())
            self.audio_open = False

    async def _refuse(self, error: EngineError) -> bool:
        """Tell the client what went wrong, as Wyoming servers do before they close the connection."""
        log.info("Wyoming request refused: %s", error.message)
        await self.write_event(Error(text=error.message, code=error.code).event())
        return False
