"""In-process audio codecs: every format encodes and decodes without a system ffmpeg."""

import av
import numpy as np
import pytest

from engine import InvalidAudio, InvalidRequest
from engine import audio
from tools.random_checkpoint import synthetic_voice

CLIP = synthetic_voice(2.0)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
def test_each_format_round_trips_at_about_the_same_length(fmt):
    decoded = audio.decode(audio.encode(CLIP, 24000, fmt), 24000)
    assert abs(len(decoded) / 24000 - 2.0) < 0.1


def test_pcm_is_raw_signed_16_bit_little_endian():
    data = audio.encode(CLIP, 24000, "pcm")
    assert len(data) == 2 * len(CLIP)
    assert np.allclose(np.frombuffer(data, "<i2") / 32767, CLIP, atol=1e-4)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "wav", "pcm"])
def test_streamed_encoding_decodes_like_the_whole(fmt):
    encoder = audio.StreamEncoder(fmt)
    parts = [encoder.encode(CLIP[i:i + 5000]) for i in range(0, len(CLIP), 5000)] + [encoder.finish()]
    assert sum(1 for p in parts if p) > 2, "bytes should come out while encoding, not only at the end"
    data = b"".join(parts)
    seconds = len(data) / 48000 if fmt == "pcm" else len(audio.decode(data, 24000)) / 24000
    assert abs(seconds - 2.0) < 0.1


def test_decode_resamples_stereo_96k_to_mono():
    import io
    import soundfile as sf

    stereo = np.stack([synthetic_voice(1.0, 96000), synthetic_voice(1.0, 96000)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, stereo, 96000, format="WAV")
    decoded = audio.decode(buffer.getvalue(), 24000)
    assert decoded.ndim == 1 and abs(len(decoded) - 24000) < 100


def test_decode_reads_only_what_is_needed(monkeypatch):
    long_clip = audio.encode(np.tile(CLIP, 30), 24000, "mp3")  # a minute
    resampled, real_resampler = [], av.AudioResampler

    class CountingResampler:
        """Wraps PyAV's resampler (which cannot be subclassed), counting the samples it is given."""

        def __init__(self, **options):
            self.inner = real_resampler(**options)

        def resample(self, frame):
            resampled.append(frame.samples if frame is not None else 0)
            return self.inner.resample(frame)

    monkeypatch.setattr(av, "AudioResampler", CountingResampler)
    assert len(audio.decode(long_clip, 16000, max_seconds=3.0)) == 3 * 16000
    assert sum(resampled) < 4 * 24000  # about 3 s of the minute were decoded


@pytest.mark.parametrize("data", [b"", b"this is not audio" * 50])
def test_unreadable_audio_gets_a_clear_error(data):
    with pytest.raises(InvalidAudio) as error:
        audio.decode(data)
    assert "clip" in error.value.message or "empty" in error.value.message


@pytest.mark.parametrize("speed", [0.25, 0.5, 2.0, 4.0])
def test_time_stretch_changes_duration_not_sample_rate(speed):
    stretched = audio.time_stretch(CLIP, 24000, speed)
    assert abs(len(stretched) / 24000 - 2.0 / speed) < 0.15 / speed


def test_output_format_follows_the_file_name():
    assert audio.format_for_path("a.mp3") == "mp3"
    assert audio.format_for_path("a.ogg") == "opus"
    with pytest.raises(InvalidRequest):
        audio.format_for_path("a.docx")
