"""Audio values and codecs, all in-process: PyAV (which carries FFmpeg) and soundfile.

No system ffmpeg is needed for anything here. PyAV loads on the first decode, stretch or compressed encode:
synthesis itself needs none of it, so the engine also runs where only its model's packages are installed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import soundfile as sf

from .errors import InvalidAudio, InvalidRequest

MODEL_SAMPLE_RATE = 24000

# format: (content type, file extension)
FORMATS = {
    "mp3": ("audio/mpeg", "mp3"),
    "opus": ("audio/ogg", "opus"),
    "aac": ("audio/aac", "aac"),
    "flac": ("audio/flac", "flac"),
    "wav": ("audio/wav", "wav"),
    "pcm": ("audio/pcm", "pcm"),
}


@dataclass(frozen=True)
class AudioChunk:
    """A piece of mono audio: float32 samples in [-1, 1] at `sample_rate`."""

    sample_rate: int
    samples: np.ndarray
    index: int = 0
    total: int = 1
    text: str = ""
    silence_before: int = 0  # samples of silence before the speech (a pause tag at the start of the text)
    silence_after: int = 0  # samples of silence after it (the pause after its sentence)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def speech(self) -> tuple[float, float]:
        """Where, in seconds from the chunk's start, its speech starts and ends."""
        return self.silence_before / self.sample_rate, (len(self.samples) - self.silence_after) / self.sample_rate


def join(chunks: list[AudioChunk]) -> AudioChunk:
    """The whole clip: the chunks laid end to end."""
    if not chunks:
        raise InvalidRequest("There is no audio to join.")
    rate = chunks[0].sample_rate
    samples = np.concatenate([c.samples for c in chunks]).astype(np.float32)
    return AudioChunk(rate, samples, 0, 1, " ".join(c.text for c in chunks if c.text))


def fade_edges(samples: np.ndarray, sample_rate: int, seconds: float = 0.01) -> np.ndarray:
    """Short raised-cosine fades at both ends, so joins do not click."""
    n = min(int(sample_rate * seconds), len(samples) // 2)
    if n == 0:
        return samples
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
    out = samples.astype(np.float32).copy()
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(int(round(seconds * sample_rate)), dtype=np.float32)


def decode(data: bytes, sample_rate: int = MODEL_SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Any common audio file (wav, mp3, flac, ogg, m4a, webm...) as mono float32 at `sample_rate`.

    Only the first `max_seconds` are decoded, so an hours-long upload costs no more than a short one.
    """
    import av

    if not data:
        raise InvalidAudio("The audio file is empty; upload or record a clip of someone speaking.", "voice")
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    pieces: list[np.ndarray] = []
    decoded = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise InvalidAudio("The file has no audio track; give a wav, mp3, flac, ogg, m4a or webm clip.", "voice")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
                    decoded += out.samples
                if limit is not None and decoded >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    pieces.append(out.to_ndarray().reshape(-1))
    except InvalidAudio:
        raise
    except (av.FFmpegError, ValueError, IndexError):
        raise InvalidAudio(
            "Could not read this file as audio; give a wav, mp3, flac, ogg, m4a or webm clip.",
            "voice",
        ) from None
    samples = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
    return samples[:limit] if limit is not None else samples


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr through librosa's choice of backend)."""
    if from_rate == to_rate:
        return samples
    import soxr

    return soxr.resample(samples, from_rate, to_rate).astype(np.float32)


def time_stretch(samples: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """Play `speed` times faster (or slower) with the pitch unchanged, using FFmpeg's atempo."""
    if speed == 1.0 or len(samples) == 0:
        return samples
    import av

    graph = av.filter.Graph()
    source = graph.add_abuffer(format="flt", sample_rate=sample_rate, layout="mono", time_base=Fraction(1, sample_rate))
    previous = source
    for factor in _atempo_factors(speed):
        tempo = graph.add("atempo", f"{factor}")
        previous.link_to(tempo)
        previous = tempo
    sink = graph.add("abuffersink")
    previous.link_to(sink)
    graph.configure()
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    frame.time_base = Fraction(1, sample_rate)
    graph.push(frame)
    graph.push(None)
    out = []
    while True:
        try:
            out.append(graph.pull().to_ndarray().reshape(-1))
        except (av.BlockingIOError, av.EOFError):
            break
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def _atempo_factors(speed: float) -> list[float]:
    """Split a speed into factors atempo accepts (0.5 to 2.0 each)."""
    factors = []
    while speed > 2.0:
        factors.append(2.0)
        speed /= 2.0
    while speed < 0.5:
        factors.append(0.5)
        speed /= 0.5
    return [*factors, speed]


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")


class StreamEncoder:
    """Encodes audio chunk by chunk into one of FORMATS; bytes come out as soon as they are ready."""

    def __init__(self, fmt: str, sample_rate: int = MODEL_SAMPLE_RATE):
        if fmt not in FORMATS:
            raise InvalidRequest(f"Unsupported format '{fmt}'; choose one of {', '.join(FORMATS)}.", "response_format")
        self.format = fmt
        self.sample_rate = sample_rate
        self._sink = _ByteSink()
        self._container = None
        self._stream = None
        self._started = False
        if fmt in ("mp3", "aac", "opus"):
            self._open_container()

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][0]

    def _open_container(self) -> None:
        import av

        container_format, codec, rate = {
            "mp3": ("mp3", "libmp3lame", self.sample_rate),
            "aac": ("adts", "aac", self.sample_rate),
            "opus": ("ogg", "libopus", 48000),
        }[self.format]
        options = {"page_duration": "100000"} if self.format == "opus" else {}
        self._container = av.open(self._sink, mode="w", format=container_format, options=options)
        self._stream = self._container.add_stream(codec, rate=rate, layout="mono")
        self._stream.bit_rate = 64000 if self.format == "opus" else 128000
        self._stream.codec_context.open()
        self._resampler = av.AudioResampler(
            format=self._stream.format.name, layout="mono", rate=rate, frame_size=self._stream.codec_context.frame_size
        )
        self._pts = 0

    def _take(self) -> bytes:
        return self._sink.take()

    def encode(self, samples: np.ndarray) -> bytes:
        """Bytes for the next piece of audio (possibly empty while the codec fills a frame)."""
        if self.format == "pcm":
            return to_pcm16(samples).tobytes()
        if self.format == "wav":
            header = b"" if self._started else _streaming_wav_header(self.sample_rate)
            self._started = True
            return header + to_pcm16(samples).tobytes()
        if self.format == "flac":
            raise InvalidRequest("flac cannot be streamed; ask for mp3, opus, aac, wav or pcm.", "response_format")
        import av

        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = self.sample_rate
        for converted in self._resampler.resample(frame):
            self._mux(converted)
        return self._take()

    def _mux(self, frame) -> None:
        frame.pts = self._pts
        self._pts += frame.samples
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def finish(self) -> bytes:
        """Flush the codec and close the container; the last bytes of the stream."""
        if self._container is None:
            return b""
        for converted in self._resampler.resample(None):
            self._mux(converted)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return self._take()


class _ByteSink:
    """A write-only, unseekable file for PyAV, so muxers never go back to patch what was already sent."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _streaming_wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header whose sizes say 'unknown length', as streaming players accept."""
    import struct

    unknown = 0xFFFFFFFF
    return (
        b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", unknown)
    )


def encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """A whole clip as a complete file of format `fmt`."""
    if fmt in ("wav", "flac"):
        buffer = io.BytesIO()
        sf.write(buffer, samples, sample_rate, format=fmt.upper(), subtype="PCM_16")
        return buffer.getvalue()
    encoder = StreamEncoder(fmt, sample_rate)
    return encoder.encode(samples) + encoder.finish()


def format_for_path(path: str) -> str:
    """The output format a file name asks for (out.mp3 -> mp3); wav when it names none we know."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else "wav"
    aliases = {"ogg": "opus", "m4a": "aac", "raw": "pcm"}
    fmt = aliases.get(suffix, suffix)
    if fmt not in FORMATS:
        raise InvalidRequest(f"Cannot write '.{suffix}' files; use one of .{', .'.join(FORMATS)}.", "output")
    return fmt
