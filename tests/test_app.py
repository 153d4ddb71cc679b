"""The Gradio app: page start-up, a real browser run, the named API, concurrency and errors (tiny weights, CPU)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, ffmpeg

from joygen.media import load_audio, probe

ARTIFACTS = ROOT / "build" / "test-artifacts"  # screenshots land here (git-ignored)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python app.py ...`` in a subprocess with its own Gradio temp folder."""

    def __init__(self, tmp: Path, *args: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(tmp / "gradio"),
            "PYTHONPATH": str(ROOT),
        }
        self.log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(self.port), *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.started = time.monotonic()

    def wait(self, timeout: float = 600) -> float:  # generous: a busy 2-core machine starts it slowly
        """Seconds until the page answers 200."""
        while time.monotonic() - self.started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"the app exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"no page after {timeout} s: {Path(self.log.name).read_text()[-2000:]}")

    def config(self) -> dict:
        with urllib.request.urlopen(self.url + "config", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_weights):
    tmp = tmp_path_factory.mktemp("app")
    s = Server(tmp, "--weights", str(tiny_weights), "--max-seconds", "8", "--concurrency", "2")
    s.wait()
    yield s
    s.stop()


def _client(server, tmp_path):
    from gradio_client import Client

    return Client(server.url, download_files=str(tmp_path / "downloads"), verbose=False)


def _page_text(config: dict) -> str:
    return json.dumps([c.get("props", {}).get("value") for c in config["components"]])


def test_the_app_module_imports_without_side_effects():
    import importlib

    app = importlib.import_module("app")
    assert app.STATE.pipeline is None  # nothing loaded at import
    demo = app.build_demo(app.AppState(panel="panel"))
    assert any(d.get("api_name") == "edit" for d in demo.config["dependencies"])


def test_the_tiny_weights_page_says_so(server):
    text = _page_text(server.config())
    assert "meaningless" in text  # the tiny banner
    assert "tiny test weights" in text  # the weights panel says where each model came from


def test_without_any_weights_the_page_explains(tmp_path):
    s = Server(tmp_path, "--weights", str(tmp_path / "empty"))
    try:
        assert s.wait() < 20
        text = _page_text(s.config())
        assert "weights are missing" in text and "weights import" in text and "JOYGEN_WEIGHTS_REPO" in text
    finally:
        s.stop()


def _tone(path: Path, freq: int, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=16000:duration={seconds}", str(path))
    return path


def _dominant_hz(path) -> float:
    wav = load_audio(path)
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spectrum) * 16000 / len(wav))


def test_two_clients_at_once_get_their_own_results(server, media, tmp_path):
    from gradio_client import handle_file

    voices = {220: _tone(tmp_path / "a.wav", 220, 1.0), 440: _tone(tmp_path / "b.wav", 440, 1.6)}
    jobs = {
        hz: _client(server, tmp_path / str(hz)).submit(
            handle_file(str(media["face_noaudio_mp4"])), handle_file(str(path)), api_name="/edit"
        )
        for hz, path in voices.items()
    }
    results = {hz: job.result(timeout=300) for hz, job in jobs.items()}
    assert results[220][0] != results[440][0]
    for hz, result in results.items():
        video = result[0]
        assert abs(_dominant_hz(video) - hz) < 5  # each result carries its own request's voice
        assert abs(probe(video).duration - (1.0 if hz == 220 else 1.6)) < 0.15
        side = probe(result[1])
        assert side.video.width == 2 * probe(video).video.width  # original | edited


def test_errors_are_readable_and_the_app_keeps_serving(server, media, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = _client(server, tmp_path)
    blank = tmp_path / "room.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=beige:s=320x240:r=25", "-t", "0.6", "-pix_fmt", "yuv420p", str(blank))
    long_voice = _tone(tmp_path / "long.wav", 300, 10.0)  # the server's limit is 8 s
    cases = [
        (blank, media["tone_wav"], "no face found"),
        (media["face_mp4"], media["face_noaudio_mp4"], "no sound track"),
        (media["face_mp4"], long_voice, "the limit here is 8 s"),
    ]
    for video, audio, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(str(video)), handle_file(str(audio)), api_name="/edit")
    result = client.predict(handle_file(str(media["face_mp4"])), handle_file(str(media["tone_wav"])), api_name="/edit")
    assert probe(result[0]).video.codec == "h264"


def _set_inputs(page, video, audio) -> None:
    """Replace the uploads (clearing what is there first). A video as the voice goes to the "any file" tab."""
    for elem in ("#in-video", "#in-audio", "#in-voice-file"):
        clear = page.locator(f"{elem} button[aria-label*='Clear'], {elem} button[title*='Clear']")
        if clear.count() and clear.first.is_visible():
            clear.first.click()
    page.locator("#in-video input[type=file]").set_input_files(str(video))
    if Path(audio).suffix == ".mp4":
        page.get_by_role("tab", name="Voice from any file").click()
        page.locator("#in-voice-file input[type=file]").set_input_files(str(audio))
        page.get_by_role("tab", name="New voice track").click()
    else:
        page.locator("#in-audio input[type=file]").set_input_files(str(audio))
    page.wait_for_selector("#in-video video", timeout=30_000)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_edits_the_demo_clip_and_shows_every_stage(server, demo_video, demo_audio, media, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url, wait_until="networkidle")
        _set_inputs(page, demo_video, demo_audio)
        page.locator("#edit-button").click()
        page.wait_for_selector("#out-video video", timeout=900_000)  # no speed asserted: only that it ends
        assert page.locator("#out-side video").count() == 1
        assert page.locator("#depth-gallery img").count() >= 4
        assert page.locator("#lip-plot canvas, #lip-plot svg").count() >= 1
        assert "generate" in page.locator("#timings").inner_text()
        assert page.locator("#report a, #report [download]").count() >= 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "app-edit.png"), full_page=True)
        # readable errors in the page, and the page keeps working afterwards
        blank = tmp_path / "room.mp4"
        ffmpeg("-f", "lavfi", "-i", "color=c=beige:s=320x240:r=25", "-t", "0.6", "-pix_fmt", "yuv420p", str(blank))
        long_voice = _tone(tmp_path / "long_voice.wav", 300, 10.0)  # the server's limit is 8 s
        cases = [
            (blank, demo_audio, "no face found", "room.mp4"),
            (media["face_mp4"], media["face_noaudio_mp4"], "no sound track", "face_noaudio.mp4"),
            (media["face_mp4"], long_voice, "the limit here is 8 s", "long_voice.wav"),
        ]
        for k, (video, audio, message, name) in enumerate(cases):
            _set_inputs(page, video, audio)
            page.locator("#edit-button").click()
            page.get_by_text(message).first.wait_for(timeout=60_000)
            status = page.locator("#status").inner_text()
            assert message in status and name in status and "/gradio/" not in status  # the user's file name
            page.screenshot(path=str(ARTIFACTS / f"app-error-{k}.png"), full_page=True)
            for close in page.locator("button[aria-label*='lose']").all():  # dismiss the error toasts
                if close.is_visible():
                    close.click()
        _set_inputs(page, media["face_mp4"], media["tone_wav"])
        page.locator("#edit-button").click()
        page.get_by_text("Done.").first.wait_for(timeout=120_000)
        assert page.locator("#out-video video").count() == 1
        browser.close()


def test_readme_space_card_matches_the_weights_table():
    import yaml

    from joygen.weights.locator import ARTIFACTS

    text = (ROOT / "README.md").read_text()
    card = yaml.safe_load(text.split("---\n")[1])
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py"
    import gradio

    assert card["sdk_version"] == gradio.__version__  # the Space runs the version the tests ran
    expected = {
        f"{a.public_repo} {','.join(a.public_files)} {a.public_revision}" for a in ARTIFACTS.values() if a.public_repo
    }
    assert set(card["preload_from_hub"]) == expected
    assert set(card["models"]) == {a.public_repo for a in ARTIFACTS.values() if a.public_repo}
    assert 'api_name="/edit"' in text and "gradio_client" in text
