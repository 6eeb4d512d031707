"""The engine end to end on the tiny random checkpoint: structure and behaviour, never voice quality."""

import threading
import time

import numpy as np
import pytest

from conftest import TEST_CHUNK_TOKENS
from engine import (Busy, Cancelled, Engine, EngineConfig, InvalidAudio, InvalidRequest, ModelUnavailable,
                    SynthesisRequest, Voice, audio)
from engine.text import split
from tools.random_checkpoint import synthetic_voice

TOKEN_SECONDS = 1 / 25


def test_output_is_24khz_mono_float_within_the_token_budget(engine):
    clip = engine.synthesize(SynthesisRequest("Hello there.", seed=1))
    assert clip.sample_rate == 24000
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert 0 < clip.duration <= TEST_CHUNK_TOKENS * TOKEN_SECONDS + 0.1
    assert np.max(np.abs(clip.samples)) > 0


def test_same_seed_gives_identical_audio_and_another_seed_does_not(engine):
    first = engine.synthesize(SynthesisRequest("Same words.", seed=7))
    second = engine.synthesize(SynthesisRequest("Same words.", seed=7))
    other = engine.synthesize(SynthesisRequest("Same words.", seed=8))
    assert audio.encode(first.samples, 24000, "wav") == audio.encode(second.samples, 24000, "wav")
    assert not np.array_equal(first.samples, other.samples)


def test_unseeded_request_reports_the_seed_it_used(engine):
    job = engine.submit(SynthesisRequest("Hi."))
    assert isinstance(job.seed, int)
    again = engine.synthesize(SynthesisRequest("Hi.", seed=job.seed))
    assert np.array_equal(job.result().samples, again.samples)


def test_long_text_yields_every_chunk_in_order(engine):
    sentences = [f"This is sentence number {i}, which carries a little more text to be spoken." for i in range(42)]
    text = " ".join(sentences)
    assert len(text) >= 3000
    expected = split(text, engine.config.chunk_chars)
    chunks = list(engine.submit(SynthesisRequest(text, seed=3, max_tokens_per_chunk=2)))
    assert [c.index for c in chunks] == list(range(len(expected)))
    assert [c.text for c in chunks] == [e.text for e in expected]
    assert all(c.total == len(expected) and c.duration > 0 for c in chunks)
    whole = audio.join(chunks)
    assert whole.duration == pytest.approx(sum(c.duration for c in chunks))
    assert " ".join(c.text for c in chunks).split() == text.split()


def test_repeated_reference_clip_reuses_its_conditionals(engine):
    clip = wav_bytes(synthetic_voice(2.0, seed=99))
    cache = engine.synthesizer.cache
    misses, hits = cache.misses, cache.hits
    engine.synthesize(SynthesisRequest("One.", voice=Voice(clip=clip), seed=1, max_tokens_per_chunk=5))
    engine.synthesize(SynthesisRequest("Two.", voice=Voice(clip=clip), seed=1, exaggeration=0.9,
                                       max_tokens_per_chunk=5))
    assert (cache.misses - misses, cache.hits - hits) == (1, 1)


def test_library_voice_speaks(engine, reference_clip):
    voice = engine.library.add("speaker.mp3", reference_clip, name="Speaker")
    clip = engine.synthesize(SynthesisRequest("Hi.", voice=Voice(library_id=voice.id), seed=5, max_tokens_per_chunk=5))
    assert clip.duration > 0


def test_speed_shortens_the_audio(engine):
    normal = engine.synthesize(SynthesisRequest("Speed.", seed=2, max_tokens_per_chunk=20))
    fast = engine.synthesize(SynthesisRequest("Speed.", seed=2, max_tokens_per_chunk=20, speed=2.0))
    assert fast.duration == pytest.approx(normal.duration / 2, rel=0.15)


def wav_bytes(samples, rate=24000):
    return audio.encode(samples, rate, "wav")


@pytest.mark.parametrize("request_args,error,words", [
    ({"text": "   "}, InvalidRequest, "empty"),
    ({"text": "?!... —"}, InvalidRequest, "no letters"),
    ({"text": "Hi.", "voice": Voice(clip=wav_bytes(np.zeros(24000 * 3, np.float32)))}, InvalidAudio, "silent"),
    ({"text": "Hi.", "voice": Voice(clip=wav_bytes(synthetic_voice(0.3)))}, InvalidAudio, "at least"),
    ({"text": "Hi.", "voice": Voice(clip=b"not audio at all" * 100)}, InvalidAudio, "Could not read"),
    ({"text": "Hi.", "voice": Voice(library_id="nobody.wav")}, Exception, "no library voice"),
])
def test_bad_input_gets_a_clear_error(engine, request_args, error, words):
    with pytest.raises(error) as raised:
        engine.synthesize(SynthesisRequest(**request_args))
    assert words in raised.value.message


def test_worker_keeps_serving_after_bad_input(engine):
    with pytest.raises(InvalidAudio):
        engine.synthesize(SynthesisRequest("Hi.", voice=Voice(clip=b"junk" * 10)))
    assert engine.synthesize(SynthesisRequest("Still here.", seed=6, max_tokens_per_chunk=3)).duration > 0


def test_english_model_refuses_other_languages(engine):
    with pytest.raises(InvalidRequest) as raised:
        engine.submit(SynthesisRequest("Bonjour.", language="fr"))
    assert "chatterbox-multilingual" in raised.value.message


def test_full_queue_says_busy_and_queued_work_can_be_cancelled(engine):
    blocker = engine.submit(SynthesisRequest("Block the worker for a moment.", seed=7, max_tokens_per_chunk=20))
    while blocker.stage == "queued":
        time.sleep(0.01)
    queued = [engine.submit(SynthesisRequest("Queued.", max_tokens_per_chunk=2))
              for _ in range(engine.config.queue_size)]
    with pytest.raises(Busy) as raised:
        engine.submit(SynthesisRequest("One too many."))
    assert raised.value.retry_after > 0
    for job in queued:
        job.cancel()
    blocker.result()
    for job in queued:
        with pytest.raises(Cancelled):
            job.result()


def test_running_request_stops_between_chunks_when_cancelled(engine):
    job = engine.submit(SynthesisRequest("First part. Second part. Third part. Fourth part.", seed=8,
                                          max_tokens_per_chunk=10))
    chunks = iter(job)
    next(chunks)
    job.cancel()
    with pytest.raises(Cancelled):
        list(chunks)


def test_leaving_the_iteration_cancels_the_rest(engine):
    job = engine.submit(SynthesisRequest("One. Two. Three. Four. Five.", seed=9, max_tokens_per_chunk=5))
    for _ in job:
        break
    assert job.cancelled


def test_requests_from_many_threads_are_served_one_at_a_time(engine):
    results = []

    def ask(seed):
        results.append((seed, engine.synthesize(SynthesisRequest("Threads.", seed=seed, max_tokens_per_chunk=5))))

    threads = [threading.Thread(target=ask, args=(s,)) for s in (1, 2, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_seed = {}
    for seed, clip in results:
        by_seed.setdefault(seed, []).append(clip.samples)
    assert np.array_equal(*by_seed[1])


def test_bad_checkpoint_directory_is_a_clear_error_and_the_engine_stays_up(tmp_path, tiny_checkpoint):
    broken = Engine(EngineConfig(device="cpu", checkpoint_dir=tmp_path, data_dir=tmp_path / "data"))
    with pytest.raises(ModelUnavailable) as raised:
        broken.synthesize(SynthesisRequest("Hello."))
    assert "t3_cfg.safetensors" in raised.value.message and "--checkpoint-dir" in raised.value.message
    for name in ("ve.safetensors", "s3gen.safetensors", "tokenizer.json"):
        (tmp_path / name).symlink_to(tiny_checkpoint / name)
    (tmp_path / "t3_cfg.safetensors").write_bytes(b"corrupt")
    with pytest.raises(ModelUnavailable) as raised:
        broken.synthesize(SynthesisRequest("Hello."))
    assert "intact Chatterbox checkpoint" in raised.value.message
    assert broken.status()["model"] is None
    broken.close()


def test_turbo_reports_the_parameters_it_ignores(engine):
    job = engine.submit(SynthesisRequest("Hi.", model="chatterbox-turbo", cfg_weight=0.8, exaggeration=0.7))
    assert sorted(job.ignored_parameters) == ["cfg_weight", "exaggeration"]
    with pytest.raises(ModelUnavailable):
        job.result()
    assert engine.synthesize(SynthesisRequest("Back to English.", seed=10, max_tokens_per_chunk=3)).duration > 0


def test_a_job_says_how_many_chunks_it_will_deliver_before_the_first(engine):
    job = engine.submit(SynthesisRequest("First sentence here. And a second one.", seed=2, max_tokens_per_chunk=2))
    assert job.chunks == 2
    assert [chunk.total for chunk in job] == [job.chunks] * job.chunks


def test_a_caller_holding_the_model_keeps_the_worker_off_it_until_done(engine):
    with engine.using_model() as model:
        job = engine.submit(SynthesisRequest("Held back.", seed=4, max_tokens_per_chunk=2))
        time.sleep(1.0)
        assert model.sample_rate == 24000 and job.stage == "queued"
    assert job.result().duration > 0


def test_a_job_tells_what_the_worker_does_for_it_in_a_persons_words(engine):
    text = "First sentence here. " + " ".join(f"Then sentence {n}, which is a little longer than the first." for n in
                                               range(6))
    job = engine.submit(SynthesisRequest(text, seed=5))
    seen = [job.activity]
    while job.stage != "done":
        if job.activity != seen[-1]:
            seen.append(job.activity)
        time.sleep(0.02)
    assert seen[0] in ("waiting for the requests ahead", "preparing the voice")
    assert f"speaking chunk 1 of {job.chunks}" in seen and f"vocoding chunk 1 of {job.chunks}" in seen
    assert any(step.startswith("speaking chunks 2-") for step in seen)


def test_a_request_cancelled_while_its_last_chunks_are_vocoded_stops_there(engine):
    text = "First sentence here. " + " ".join(f"Then sentence {n} is long enough to fill a chunk of its own, as it "
                                               f"goes on with words about nothing much at all for a while longer, "
                                               f"well past a hundred characters." for n in range(4))
    cancelled = engine.status()["cancelled_jobs"]
    job = engine.submit(SynthesisRequest(text, seed=6))
    assert job.chunks == 5  # the first alone, then the last four in one batch
    while job.activity != "vocoding chunks 2-5 of 5" and job.stage != "done":
        time.sleep(0.01)
    job.cancel()
    with pytest.raises(Cancelled):
        job.result()
    assert engine.status()["cancelled_jobs"] == cancelled + 1
