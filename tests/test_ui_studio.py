"""The running studio as its users meet it: a browser on the desk, gradio_client on /synthesize, one server."""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from engine import audio
from tools.random_checkpoint import synthetic_voice

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SYNTHESIS_TIMEOUT_MS = 240_000


@contextmanager
def desk_page(studio: str):
    """A headless Chromium page on the desk, once the engine status line is up."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1250})
            page.goto(studio)
            expect(page.locator("#engine-status")).to_contain_text("on cpu", timeout=30_000)
            yield page
        finally:
            browser.close()


def test_http_api_routes_are_on_the_app_launch_serves(studio):
    assert requests.get(f"{studio}/health", timeout=10).json()["status"] == "ok"
    assert requests.get(f"{studio}/docs", timeout=10).ok
    assert "/health" in requests.get(f"{studio}/openapi.json", timeout=10).json()["paths"]
    assert requests.get(f"{studio}/config", timeout=10).json()["title"] == "Chatterbox Studio"


def test_gradio_client_synthesizes_with_a_reference_clip(studio, reference_clip, tmp_path):
    from gradio_client import Client, handle_file

    clip = tmp_path / "me.mp3"
    clip.write_bytes(reference_clip)
    client = Client(studio, verbose=False)
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/synthesize", "/voices", "/presets"}
    path, captions = client.predict(text="Hi.", reference=handle_file(str(clip)), exaggeration=0.6, seed=7,
                                    output_format="flac", api_name="/synthesize")
    assert path.endswith(".flac") and "seed7" in path and captions is None
    assert len(audio.decode(Path(path).read_bytes())) > 0
    path, captions = client.predict(text="One. [pause:1s] Two.", captions=True, api_name="/synthesize")
    srt, vtt = (Path(file).read_text() for file in captions)
    assert srt.startswith("1\n00:00:00,000 --> ") and "\n\n2\n" in srt and "Two." in srt
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ") and "One." in vtt
    library = requests.get(f"{studio}/api/speakers", timeout=30).json()["speakers"]
    assert [v["id"] for v in client.predict(api_name="/voices")] == [v["id"] for v in library]
    assert client.predict(api_name="/presets")["neutral"]["exaggeration"] == 0.5


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install_test_browser.sh")
def test_a_person_clones_a_voice_saves_it_and_uses_it(studio, tmp_path):
    from playwright.sync_api import expect

    clip = tmp_path / "my-voice.mp3"  # a voice of its own: a clip the library holds already is chosen, not saved again
    clip.write_bytes(audio.encode(synthetic_voice(3.0, seed=23), 24000, "mp3"))
    with desk_page(studio) as page:
        page.fill("#studio-text textarea", "Hello there.")
        expect(page.locator("#text-count")).to_contain_text("12 / 4096 characters · 1 chunk", timeout=30_000)
        page.set_input_files("#reference input[type=file]", str(clip))
        expect(page.get_by_text("Reference: 3.0 s")).to_be_visible(timeout=30_000)
        page.click("#generate-button")
        expect(page.locator("#output-audio audio[src]")).to_have_count(1, timeout=SYNTHESIS_TIMEOUT_MS)
        expect(page.locator("#seed-note p")).to_contain_text("reference clip")
        expect(page.locator("#download")).to_contain_text(".mp3")
        screenshot = ROOT / "docs" / "desk.png" if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "desk.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000

        page.fill("#voice-name textarea", "Test Voice")
        page.click("#save-voice")
        expect(page.locator("#library-note")).to_contain_text("Saved voice Test Voice", timeout=30_000)
        expect(page.locator("#voice-select input")).to_have_value("Test Voice (my-voice.mp3)")
        page.focus("#studio-text textarea")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#seed-note p")).to_contain_text("library voice 'Test Voice'",
                                                             timeout=SYNTHESIS_TIMEOUT_MS)

        page.get_by_role("tab", name="API").click()
        expect(page.locator("#api-examples")).to_contain_text(f'Client("{studio}")')


def start_a_dataset(page, folder: Path, name: str) -> None:
    """Start the Dataset tab on `folder`'s phrases.txt, spoken in the voice of its voice.mp3."""
    page.get_by_role("tab", name="Dataset").click()
    page.set_input_files("#dataset-phrases input[type=file]", str(folder / "phrases.txt"))
    page.set_input_files("#dataset-clip input[type=file]", str(folder / "voice.mp3"))
    page.fill("#dataset-name textarea", name)
    page.click("#dataset-start")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install_test_browser.sh")
def test_the_dataset_tab_turns_a_phrase_file_and_a_clip_into_a_zip(studio, reference_clip, tmp_path):
    from playwright.sync_api import expect

    (tmp_path / "voice.mp3").write_bytes(reference_clip)
    (tmp_path / "phrases.txt").write_text("First phrase.\n\nSecond phrase.\n", encoding="utf-8")
    with desk_page(studio) as page:
        start_a_dataset(page, tmp_path, "browser-set")
        expect(page.locator("#dataset-status")).to_contain_text("Done: 2 items", timeout=SYNTHESIS_TIMEOUT_MS)
        expect(page.locator("#dataset-zip a")).to_have_attribute("href", re.compile(r"/browser-set\.zip$"))


LONG_TEXT = " ".join(f"Sentence number {n} is long enough to be a chunk of its own, since it runs on and on with more "
                     f"words than one chunk of two hundred and fifty characters could hold beside another sentence as "
                     f"long as it is." for n in range(9))


def health(studio: str) -> dict:
    return requests.get(f"{studio}/health", timeout=10).json()


def wait_until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_until_idle(studio: str, seconds: float) -> dict:
    """/health once the engine runs nothing, or as it is after `seconds`."""
    wait_until(lambda: not health(studio)["busy"], seconds)
    return health(studio)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install_test_browser.sh")
@pytest.mark.parametrize("made, kept", [
    (0, "Stopped before any audio was made: nothing was kept."),
    (1, "Stopped after 1 of 9 chunks"),  # the middle: chunks 2-5 are being made together
    (5, "Stopped after 5 of 9 chunks"),  # the last batch: chunks 6-9
])
def test_stop_frees_the_engine_at_once_and_keeps_the_chunks_made(studio, made, kept):
    from playwright.sync_api import expect

    with desk_page(studio) as page:
        cancelled = wait_until_idle(studio, 60)["cancelled_jobs"]
        page.fill("#studio-text textarea", LONG_TEXT)
        page.click("#generate-button")
        if made:
            expect(page.locator("#output-audio")).to_contain_text(f"{made}/9 chunk", timeout=SYNTHESIS_TIMEOUT_MS)
        else:
            wait_until(lambda: health(studio)["running"] == 1, 60)
        page.click("#stop-button")
        status = wait_until_idle(studio, 5)
        assert not status["busy"] and status["cancelled_jobs"] == cancelled + 1
        expect(page.locator("#seed-note p")).to_contain_text(kept)
        page.fill("#studio-text textarea", "And now a short one.")
        page.click("#generate-button")
        expect(page.locator("#seed-note p")).to_contain_text("1 chunk(s)", timeout=SYNTHESIS_TIMEOUT_MS)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install_test_browser.sh")
def test_closing_the_page_midway_frees_the_engine(studio):
    from playwright.sync_api import expect

    with desk_page(studio) as page:
        cancelled = wait_until_idle(studio, 60)["cancelled_jobs"]
        page.fill("#studio-text textarea", LONG_TEXT)
        page.click("#generate-button")
        expect(page.locator("#output-audio")).to_contain_text("1/9 chunk", timeout=SYNTHESIS_TIMEOUT_MS)
        page.close()
        status = wait_until_idle(studio, 5)
    assert not status["busy"] and status["cancelled_jobs"] == cancelled + 1


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install_test_browser.sh")
def test_dataset_stop_frees_the_engine_and_says_what_was_kept(studio, reference_clip, tmp_path):
    from playwright.sync_api import expect

    (tmp_path / "voice.mp3").write_bytes(reference_clip)
    (tmp_path / "phrases.txt").write_text("".join(f"Phrase number {n}.\n" for n in range(12)), encoding="utf-8")
    with desk_page(studio) as page:
        cancelled = wait_until_idle(studio, 60)["cancelled_jobs"]
        start_a_dataset(page, tmp_path, "stopped-set")
        expect(page.locator("#dataset-status")).to_contain_text("1 of 12 phrases", timeout=SYNTHESIS_TIMEOUT_MS)
        page.click("#dataset-stop")
        expect(page.locator("#dataset-status")).to_contain_text("Stopped: ")
        expect(page.locator("#dataset-status")).to_contain_text("phrases are kept. Start again to resume.")
        expect(page.locator("#dataset-zip a")).to_have_count(0)
        status = wait_until_idle(studio, 5)
        assert not status["busy"] and status["cancelled_jobs"] == cancelled + 1


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install_test_browser.sh")
def test_an_input_error_shows_at_the_text_and_leaves_the_last_take_alone(studio):
    from playwright.sync_api import expect

    with desk_page(studio) as page:
        page.fill("#studio-text textarea", "Hello there.")
        page.click("#generate-button")
        expect(page.locator("#seed-note p")).to_contain_text("1 chunk(s)", timeout=SYNTHESIS_TIMEOUT_MS)
        note = page.locator("#seed-note p").inner_text()
        page.fill("#studio-text textarea", "   ")
        page.click("#generate-button")
        expect(page.locator("#studio-text")).to_contain_text("The text is empty; type something to say.")
        expect(page.locator("#seed-note p")).to_have_text(note)
        expect(page.locator("#output-audio audio[src]")).to_have_count(1)
        expect(page.get_by_text("Error", exact=True)).to_have_count(0)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install_test_browser.sh")
def test_a_failed_model_switch_is_told_to_the_asker_and_the_header_tells_the_loaded_model(studio):
    from playwright.sync_api import expect

    with desk_page(studio) as page:
        page.get_by_text("Advanced").click()
        page.click("#model-select input")
        page.get_by_role("option", name="chatterbox-turbo").click()
        page.fill("#studio-text textarea", "Hello there.")
        page.click("#generate-button")
        expect(page.get_by_text("has no chatterbox-turbo weights").first).to_be_visible(timeout=60_000)
        expect(page.locator("#engine-status")).not_to_contain_text("Could not load")
        page.click("#model-select input")
        page.get_by_role("option", name="chatterbox", exact=True).click()
        page.click("#generate-button")
        expect(page.locator("#seed-note p")).to_contain_text("1 chunk(s)", timeout=SYNTHESIS_TIMEOUT_MS)
        expect(page.locator("#engine-status")).to_contain_text("chatterbox ready on cpu")
    with desk_page(studio) as another_visitor:
        expect(another_visitor.locator("#engine-status")).not_to_contain_text("Could not load")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run tools/install_test_browser.sh")
def test_captions_ticked_on_the_desk_come_with_the_take_a_cue_per_sentence(studio):
    from playwright.sync_api import expect

    with desk_page(studio) as page:
        page.fill("#studio-text textarea", "The first sentence. And the second one.")
        page.check("#captions input[type=checkbox]")
        page.click("#generate-button")
        expect(page.locator("#seed-note p")).to_contain_text("2 chunk(s)", timeout=SYNTHESIS_TIMEOUT_MS)
        for extension in (".mp3", ".srt", ".vtt"):
            expect(page.locator(f"#download a[href$='{extension}']")).to_have_count(1)
        srt = requests.get(page.locator("#download a[href$='.srt']").get_attribute("href"), timeout=30).text
    cues = [block.splitlines() for block in srt.strip().split("\n\n")]
    assert [cue[2] for cue in cues] == ["The first sentence.", "And the second one."]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", cue[1]) for cue in cues)
