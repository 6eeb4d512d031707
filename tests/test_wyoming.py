"""The studio's Wyoming server, driven by the real `wyoming` client the way Home Assistant drives it.

The shared studio (tests/conftest.py) serves Wyoming on loopback with the tiny checkpoint. `ha_*` below replay Home
Assistant's Wyoming integration (homeassistant/components/wyoming: data.py's describe, tts.py's synthesize and its
streaming form) event for event.
"""

from __future__ import annotations

import asyncio
import io
import wave

import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped,
                         SynthesizeVoice)

from conftest import idle_health, save_voice

RATE = 24000
# With at most 30 speech tokens per chunk one sentence is at most 1.2 s of audio, and at least a few tokens.
SENTENCE_SECONDS = (0.1, 1.2 + 0.6)
TIMEOUT = 600  # a shared, slow machine


@pytest.fixture(scope="module")
def wyoming(studio, wyoming_port) -> tuple[str, int]:
    return "127.0.0.1", wyoming_port


@pytest.fixture(scope="module")
def library_voice(studio, reference_clip) -> str:
    return save_voice(studio, reference_clip, "kitchen.mp3", "Kitchen voice")


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


async def read(client: AsyncTcpClient) -> Event | None:
    return await asyncio.wait_for(client.read_event(), TIMEOUT)


async def ha_load_info(host: str, port: int) -> Info:
    """Home Assistant's `load_wyoming_info`: describe, then events until `info`, within its 1 s timeout (5 s here,
    for a busy machine)."""
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 5)
            assert event is not None, "the connection closed before info"
            if Info.is_type(event.type):
                return Info.from_event(event)


async def ha_get_tts_audio(host: str, port: int, message: str, voice_name: str | None) -> tuple[bytes, list[str]]:
    """Home Assistant's `async_get_tts_audio`: one synthesize, audio chunks written into a WAV file until
    audio-stop; the file and the event types seen."""
    seen = []
    async with AsyncTcpClient(host, port) as client:
        voice = SynthesizeVoice(name=voice_name) if voice_name else None
        await client.write_event(Synthesize(text=message, voice=voice).event())
        with io.BytesIO() as wav_io:
            wav_writer = None
            while True:
                event = await read(client)
                assert event is not None, "the connection closed before audio-stop"
                seen.append(event.type)
                if AudioStop.is_type(event.type):
                    break
                if AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    if wav_writer is None:
                        wav_writer = wave.open(wav_io, "wb")
                        wav_writer.setframerate(chunk.rate)
                        wav_writer.setsampwidth(chunk.width)
                        wav_writer.setnchannels(chunk.channels)
                    wav_writer.writeframes(chunk.audio)
            wav_writer.close()
            return wav_io.getvalue(), seen


def seconds_of(wav_bytes: bytes) -> float:
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (RATE, 2, 1)
        return wav.getnframes() / RATE


def test_describe_lists_the_library_voices_and_the_built_in_one(wyoming, library_voice):
    info = run(ha_load_info(*wyoming))
    program = next(tts for tts in info.tts if tts.installed)  # what Home Assistant picks
    assert program.supports_synthesize_streaming
    voices = {voice.name: voice for voice in program.voices if voice.installed}
    assert voices[library_voice].description == "Kitchen voice" and voices[library_voice].languages == ["en"]
    assert voices["built-in"].languages == ["en"]  # the tiny checkpoint is the English model


def test_an_unknown_voice_gets_an_error_then_home_assistant_synthesize_gets_24_khz_16_bit_mono(wyoming,
                                                                                               library_voice):
    async def unknown_voice() -> list[Event | None]:
        async with AsyncTcpClient(*wyoming) as client:
            await client.write_event(Synthesize("Hello.", SynthesizeVoice(name="nobody.wav")).event())
            return [await read(client), await read(client)]

    error, after = run(unknown_voice())
    assert Error.is_type(error.type) and "Unknown voice 'nobody.wav'" in Error.from_event(error).text
    assert after is None  # the connection is closed, as Wyoming servers do after an error

    wav_bytes, seen = run(ha_get_tts_audio(*wyoming, "Hello from the kitchen.", library_voice))
    low, high = SENTENCE_SECONDS
    assert low < seconds_of(wav_bytes) < high
    assert seen[0] == "audio-start" and seen[-1] == "audio-stop" and "audio-chunk" in seen


def test_streamed_text_is_spoken_sentence_by_sentence_as_it_arrives(wyoming, library_voice):
    """Home Assistant's `async_stream_tts_audio`: synthesize-start, the text in pieces as an LLM writes it, the whole
    text again in a synthesize (for older servers), synthesize-stop; audio until synthesize-stopped. Each sentence
    is spoken once it is complete, before the rest of the text has arrived."""
    voice = SynthesizeVoice(name=library_voice)
    pieces = [["The first sen", "tence is here. The sec"], ["ond one follows it. The th"], ["ird ends it."]]

    async def stream() -> list[Event]:
        events: list[Event] = []
        async with AsyncTcpClient(*wyoming) as client:
            await client.write_event(SynthesizeStart(voice=voice).event())
            for number, group in enumerate(pieces, 1):
                for piece in group:
                    await client.write_event(SynthesizeChunk(text=piece).event())
                if number == len(pieces):
                    break
                # sentence `number` is complete: its audio comes before any more text is sent
                while sum(AudioChunk.is_type(e.type) for e in events) < number:
                    events.append(await read(client))
            whole = "".join(piece for group in pieces for piece in group)
            await client.write_event(Synthesize(text=whole, voice=voice).event())
            await client.write_event(SynthesizeStop().event())
            while not SynthesizeStopped.is_type(events[-1].type):
                events.append(await read(client))
        return events

    events = run(stream())
    types = [event.type for event in events]
    assert types == ["audio-start", "audio-chunk", "audio-chunk", "audio-chunk", "audio-stop", "synthesize-stopped"]
    assert AudioStart.from_event(events[0]).rate == RATE
    low, high = SENTENCE_SECONDS
    for event in events[1:4]:  # one sentence each, the repeated whole text not spoken again
        chunk = AudioChunk.from_event(event)
        assert (chunk.rate, chunk.width, chunk.channels) == (RATE, 2, 1)
        assert low < len(chunk.audio) / 2 / RATE < high


def test_a_client_that_hangs_up_cancels_its_work(studio, wyoming):
    text = " ".join(f"Sentence number {n} is here." for n in range(5))
    cancelled_before = idle_health(studio)["cancelled_jobs"]

    async def hang_up_after_the_first_audio() -> None:
        async with AsyncTcpClient(*wyoming) as client:
            await client.write_event(Synthesize(text=text).event())
            while not AudioChunk.is_type((await read(client)).type):
                pass

    run(hang_up_after_the_first_audio())
    assert idle_health(studio)["cancelled_jobs"] == cancelled_before + 1
