"""The web page in headless Chromium (Playwright): upload a clip, record from a (fake) microphone."""
from __future__ import annotations

import os

import pytest

from lora_whisper.serving import create_app
from serving_helpers import noise, wav_bytes

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is absent (apt-get install chromium)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture()
def browser_page(transcriber, live_server, tmp_path):
    from playwright.sync_api import sync_playwright

    server = live_server(create_app(transcriber, model_id="tiny-run", batch_wait_ms=5))
    mic = tmp_path / "mic.wav"
    mic.write_bytes(wav_bytes(noise(1.5, seed=8)))
    # Chromium's fake capture device plays this file as the microphone.
    fake_mic = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS + fake_mic)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready='1']")
            yield page
        finally:
            browser.close()


def test_upload_a_clip_and_read_the_transcript(browser_page, transcriber, tmp_path):
    page = browser_page
    audio = noise(1.3, seed=7)
    path = tmp_path / "upload.wav"
    path.write_bytes(wav_bytes(audio))
    assert page.locator("#language option[value='pl']").count() == 1
    assert page.locator("#language option[value='ja']").count() == 1  # backbone-only languages too
    page.select_option("#language", "pl")
    page.set_input_files("#file", str(path))
    page.click("#send")
    page.wait_for_function("document.getElementById('status').textContent === 'Done.'")
    expected = transcriber.transcribe(audio, language="pl")
    assert page.inner_text("#transcript") == (expected.text or "(no speech recognised)")
    assert page.inner_text("#detected") == "pl" and page.inner_text("#expert") == expected.expert == "de+pl"
    assert page.inner_text("#duration") == "1.3 s"


def test_bad_upload_shows_the_error(browser_page, tmp_path):
    page = browser_page
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"definitely not audio" * 50)
    page.set_input_files("#file", str(bad))
    page.click("#send")
    page.wait_for_function("document.getElementById('status').className === 'error'")
    assert "400" in page.inner_text("#status") and "bad.wav" in page.inner_text("#status")


def test_record_from_the_microphone(browser_page):
    """MediaRecorder gives webm/opus; the server decodes it (PyAV) and answers."""
    page = browser_page
    page.select_option("#language", "de")
    page.click("#record")
    page.wait_for_function("document.getElementById('record').textContent === 'Stop'")
    page.wait_for_timeout(1200)
    page.click("#record")
    page.wait_for_function("document.getElementById('status').textContent === 'Done.'")
    assert page.inner_text("#expert") == "de"
    seconds = float(page.inner_text("#duration").split()[0])
    assert 0.5 < seconds < 5


def test_long_upload_lists_timed_segments(browser_page, transcriber, tmp_path):
    page = browser_page
    audio = noise(45.0, seed=9)
    path = tmp_path / "long.wav"
    path.write_bytes(wav_bytes(audio))
    page.select_option("#language", "de")
    page.set_input_files("#file", str(path))
    page.click("#send")
    page.wait_for_function("document.getElementById('status').textContent === 'Done.'")
    expected = transcriber.transcribe(audio, language="de").segments
    items = page.locator("#segments li").all_inner_texts()
    assert len(expected) >= 2 and len(items) == len(expected)
    clock = lambda s: f"{int(s // 60)}:{int(s % 60):02d}"  # noqa: E731
    assert items == [f"[{clock(g.start)}–{clock(g.end)}] {g.text}" for g in expected]
