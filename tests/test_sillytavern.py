"""SillyTavern's "Chatterbox" TTS provider (public/scripts/extensions/tts/chatterbox.js) against the real studio.

Each request is the one the provider's page sends, byte for byte (its JSON as `JSON.stringify` writes it, its query as
`URLSearchParams` writes it), from the page's origin; each answer is read as the provider reads it.
"""

from __future__ import annotations

import pytest
import requests

from api.compat.sillytavern import ChatterboxTts, synthesis_request
from conftest import BROWSER_ORIGIN, save_voice
from engine import audio
from engine.pipeline import chunk_texts
from settings import Settings

TIMEOUT = 600  # a shared, slow machine
RATE = 24000
PAGE = {"Origin": BROWSER_ORIGIN}
POST_HEADERS = {**PAGE, "Content-Type": "application/json", "Cache-Control": "no-cache"}


@pytest.fixture(scope="module")
def narrator(studio, reference_clip) -> str:
    return save_voice(studio, reference_clip, "narrator.mp3", "The Narrator")


def get(url: str) -> requests.Response:
    response = requests.get(url, headers=PAGE, timeout=TIMEOUT)
    assert response.headers.get("access-control-allow-origin") == BROWSER_ORIGIN  # the page may read it
    return response


def post_tts(studio: str, body: str) -> requests.Response:
    """`fetch(endpoint + '/tts', {method: 'POST', headers: ..., body: JSON.stringify(requestBody)})`, after the
    browser's preflight for its JSON content type and Cache-Control header."""
    asking = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "cache-control,content-type"}
    preflight = requests.options(f"{studio}/tts", headers={**PAGE, **asking}, timeout=TIMEOUT)
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    response = requests.post(f"{studio}/tts", data=body.encode(), headers=POST_HEADERS, timeout=TIMEOUT)
    assert response.headers.get("access-control-allow-origin") == BROWSER_ORIGIN
    return response


def seconds_of(response: requests.Response, container: bytes) -> float:
    """`response.blob()` as the page's audio element plays it: the format's own container, decoded."""
    assert response.ok, response.text
    assert response.content.startswith(container)
    return len(audio.decode(response.content, RATE)) / RATE


def test_the_provider_finds_the_studio_and_lists_library_voices_twice(studio, narrator):
    assert requests.get(studio, timeout=TIMEOUT).ok  # checkReady: the endpoint itself answers
    assert get(f"{studio}/api/ui/initial-data").json()  # checkReady of earlier versions: any JSON
    predefined = [{"name": v["display_name"], "voice_id": v.get("voice_id") or v["filename"],
                   "lang": v.get("language") or "en"} for v in get(f"{studio}/get_predefined_voices").json()]
    assert {"name": "The Narrator", "voice_id": narrator, "lang": "en"} in predefined
    assert {"name": "Built-in voice", "voice_id": "built-in", "lang": "en"} in predefined
    references = [{"name": f"[Clone] {f}", "voice_id": f"ref_{f}", "lang": "en"}
                  for f in get(f"{studio}/get_reference_files").json()]
    assert {"name": f"[Clone] {narrator}", "voice_id": f"ref_{narrator}", "lang": "en"} in references


def test_a_predefined_voice_speaks_a_wav_file(studio, narrator):
    body = ('{"text":"Good evening, traveller.","voice_mode":"predefined","temperature":0.8,'
            '"exaggeration":0.5,"cfg_weight":0.5,"seed":1820443127,"speed_factor":1,"language":"en",'
            f'"split_text":true,"chunk_size":120,"output_format":"wav","predefined_voice_id":"{narrator}"}}')
    response = post_tts(studio, body)
    assert response.headers["content-type"] == "audio/wav" and response.headers["x-seed"] == "1820443127"
    assert seconds_of(response, b"RIFF") > 0.1


def test_clone_mode_speaks_a_library_clip_as_opus(studio, narrator):
    body = ('{"text":"A cloned line.","voice_mode":"clone","temperature":0.7,"exaggeration":0.9,"cfg_weight":0.3,'
            '"seed":42,"speed_factor":1.2,"language":"en","split_text":false,"chunk_size":120,"output_format":"opus",'
            f'"reference_audio_filename":"{narrator}"}}')
    assert seconds_of(post_tts(studio, body), b"OggS") > 0.1


def test_streaming_mode_url_plays_as_it_is_made(studio, narrator):
    """The provider's streaming mode hands this URL to an audio element, which fetches it without CORS."""
    query = ("text=Streamed+line%21&voice_mode=predefined&temperature=0.8&exaggeration=0.5&cfg_weight=0.5&seed=-1"
             f"&speed_factor=1&language=en&output_format=wav&predefined_voice_id={narrator}")
    with requests.get(f"{studio}/tts-stream?{query}", stream=True, timeout=TIMEOUT) as response:
        assert response.ok and response.headers["content-type"] == "audio/wav"
        data = b"".join(response.iter_content(chunk_size=None))
    assert data.startswith(b"RIFF") and len(audio.decode(data, RATE)) / RATE > 0.1


def test_refusals_are_read_as_the_provider_reads_them(studio, narrator):
    """`throw new Error(\\`HTTP ${response.status}: ${await response.text()}\\`)`: the text says what to change."""
    unknown = post_tts(studio, '{"text":"Hi.","voice_mode":"predefined","predefined_voice_id":"S1"}')
    assert unknown.status_code == 404 and "Unknown voice 'S1'" in unknown.text
    missing = post_tts(studio, '{"text":"Hi.","voice_mode":"clone"}')
    assert missing.status_code == 400 and "reference_audio_filename" in missing.text
    gone = post_tts(studio, '{"text":"Hi.","voice_mode":"clone","reference_audio_filename":"gone.wav"}')
    assert gone.status_code == 404 and "gone.wav" in gone.text


def test_split_text_and_chunk_size_set_the_chunk_length_within_the_studios(engine):
    composer = Settings().composer(engine.config, engine.library)
    text = " ".join(f"This is sentence number {n}, which is long enough to matter." for n in range(8))

    def chunk_lengths(**fields) -> list[int]:
        request = synthesis_request(ChatterboxTts(text=text, predefined_voice_id="built-in", **fields), engine,
                                    composer)
        return [len(chunk.text) for chunk in chunk_texts(request, engine.config.chunk_chars)]

    assert max(chunk_lengths(split_text=True, chunk_size=60)) <= 60
    studio_own = chunk_lengths(split_text=False)
    assert max(studio_own) <= engine.config.chunk_chars and len(studio_own) < len(chunk_lengths(chunk_size=60))
    assert chunk_lengths(split_text=True, chunk_size=500) == studio_own  # the studio's length is the most
