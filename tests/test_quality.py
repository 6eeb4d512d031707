"""Catching bad takes: scoring, the real recognizer on a tiny random Whisper, candidates, VAD trimming, loudness."""

import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from engine import InvalidRequest, SynthesisRequest, audio
from engine.audio import AudioChunk
from engine.quality import (Recognizer, SpeechChecker, TakePicker, character_error_rate, checker_for, loudness,
                            make_take, normalize, normalize_loudness, trim_non_speech)
from engine.quality.loudness import PEAK_CEILING_DBFS
from tools.random_checkpoint import synthetic_voice

RATE = 24000


class SeededTranscriber:
    """Test double: hears a take word for word or garbled, by the seed that made it. `take_of(samples)` tells it the
    take's (seed, text); `good(seed, text)` whether that seed says that text well."""

    name = "seeded-double"

    def __init__(self, take_of, good):
        self.take_of, self.good = take_of, good

    def transcribe(self, samples, sample_rate, language):
        seed, text = self.take_of(samples)
        return text if self.good(seed, text) else text[: len(text) // 2] + " mumble mumble"


def test_normalization_ignores_case_punctuation_and_how_numbers_are_written():
    assert normalize("Hello, WORLD! It's 21 - or 3.5%?") == "hello world its twenty one or three point five percent"
    assert character_error_rate("I have 1,000 cats & 2 dogs.", "i have one thousand cats and two dogs") == 0
    assert normalize("Saya ada 21 kucing.", "ms") == "saya ada 21 kucing"  # digits are spelled out in English only
    assert character_error_rate("abcd", "abxd") == 0.25
    assert character_error_rate("hello there", "") == 1.0


def test_the_real_recognizer_transcribes_and_scores_a_take_through_faster_whisper(tiny_whisper):
    recognizer = Recognizer(str(tiny_whisper))
    checker = recognizer.checker()
    assert checker is not None, recognizer.reason
    score = checker.score(synthetic_voice(2.0, seed=4), RATE, "Hello there.", "en")
    assert isinstance(score.transcript, str) and score.cer >= 0 and score.seconds > 0  # random weights: any words


def test_without_a_recognizer_checks_are_off_with_a_reason_and_candidates_are_refused(tmp_path):
    off = Recognizer("off")
    assert off.checker() is None and "--asr-model off" in off.reason
    missing = Recognizer(str(tmp_path / "no-such-model"))  # not a folder: a hub name, unreachable or unknown
    assert missing.checker() is None and "could not be loaded" in missing.reason
    with pytest.raises(InvalidRequest, match="--asr-model") as refused:
        checker_for(SynthesisRequest("Hello.", candidates=2), missing)
    assert refused.value.param == "candidates"
    assert checker_for(SynthesisRequest("Hello."), missing) is None  # one candidate needs no recognizer


def test_finishing_values_are_checked_like_the_other_parameters():
    for wrong in ({"candidates": 0}, {"candidates": 9}, {"loudness": 3.0}, {"trim": "yes"}):
        with pytest.raises(InvalidRequest):
            SynthesisRequest("Hello.", **wrong)


def test_the_picker_keeps_each_chunks_best_candidate_and_stops_once_every_chunk_is_perfect():
    """Three candidates of two chunks: the seeded double hears chunk 0 well from seed 11 and chunk 1 from seed 12."""
    texts = ["First chunk here.", "Second chunk there."]
    made = {}  # the samples' bytes -> (seed, text)

    def chunk(seed, index):
        samples = synthetic_voice(1.0, seed=seed * 10 + index)
        made[samples.tobytes()] = (seed, texts[index])
        return AudioChunk(RATE, samples, index, 2, texts[index])

    double = SeededTranscriber(lambda samples: made[samples.tobytes()],
                               lambda seed, text: (seed, text) in {(11, texts[0]), (12, texts[1])})
    picker = TakePicker(SynthesisRequest("x", seed=10, candidates=3), SpeechChecker(double))
    assert [request.seed for request in picker.requests()] == [10, 11, 12]
    for seed in (10, 11):
        picker.offer(seed, [chunk(seed, 0), chunk(seed, 1)])
        assert not picker.settled()
    picker.offer(12, [chunk(12, 0), chunk(12, 1)])
    assert picker.settled()
    take = picker.picked()
    assert take.seeds == (11, 12) and take.worst.cer == 0
    assert take.clip.duration == pytest.approx(2.0)


def test_candidates_through_the_engine_keep_one_take_per_chunk_scored_by_the_real_recognizer(engine, tiny_whisper):
    checker = Recognizer(str(tiny_whisper)).checker()
    request = SynthesisRequest("Hello there.", seed=7, candidates=2, max_tokens_per_chunk=10)
    take = make_take(engine, request, checker)
    assert take.seeds[0] in (7, 8) and len(take.scores) == len(take.seeds) == 1
    assert take.clip.duration > 0 and take.worst.seconds > 0


def noise(seconds, seed):
    return (0.02 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)


def test_vad_cuts_noise_before_and_after_the_speech_and_keeps_the_speech():
    voice = synthetic_voice(2.0, seed=5)
    trimmed = trim_non_speech(np.concatenate([noise(1.0, 1), voice, noise(1.5, 2)]), RATE)
    assert trimmed.found_speech
    assert 2.0 <= len(trimmed.samples) / RATE <= 2.6  # the speech, a margin each side
    assert trimmed.cut_seconds >= 1.9


def test_vad_leaves_a_clip_it_hears_no_speech_in_as_it_is():
    hiss = noise(2.0, 3)
    trimmed = trim_non_speech(hiss, RATE)
    assert not trimmed.found_speech and trimmed.samples is hiss


def test_the_vad_leaves_torch_the_cpu_threads_it_had():
    """silero_vad's import sets torch to one thread for the whole process; threads that then sum floats in other
    orders make the same seed give other bits (in a fresh process: the package is imported once)."""
    script = ("import numpy as np, torch; torch.set_num_threads(2); from engine.quality import trim_non_speech; "
              "trim_non_speech(np.zeros(16000, np.float32), 16000); print(torch.get_num_threads())")
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == "2"


@pytest.mark.parametrize("target", [-23.0, -16.0])
def test_loudness_is_normalized_to_within_half_a_unit(target):
    quiet = 0.05 * synthetic_voice(3.0, seed=6)
    assert abs(loudness(normalize_loudness(quiet, RATE, target), RATE) - target) <= 0.5


def test_peaks_never_clip_even_when_the_target_asks_for_more():
    peaky = synthetic_voice(3.0, seed=7)
    peaky[RATE] = 0.9  # one spike far above the rest
    louder = normalize_loudness(peaky, RATE, -5.0)
    assert np.max(np.abs(louder)) <= 10 ** (PEAK_CEILING_DBFS / 20) + 1e-6
    assert math.isinf(loudness(np.zeros(RATE // 10, np.float32), RATE))  # too short to measure: left alone


def test_finish_trims_and_evens_a_whole_take():
    from engine.quality import finish

    clip = AudioChunk(RATE, np.concatenate([noise(1.0, 4), synthetic_voice(2.0, seed=8), noise(1.0, 5)]))
    done = finish(clip, SynthesisRequest("x", trim=True, loudness=-20.0))
    assert done.duration < 2.7 and abs(loudness(done.samples, RATE) + 20.0) <= 0.5
    assert audio.join([done]).sample_rate == RATE
