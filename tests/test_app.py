"""The Gradio app: the page in a browser (headless Debian chromium), the named API, errors (tiny weights, CPU).

Browser tests save a screenshot under their tmp folder. No speed is asserted: every wait is generous.
"""

from __future__ import annotations

import json
import os
import re
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

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
LONG = 900_000  # ms: the longest wait for an edit in the browser (a busy 2-core machine); never a speed bound


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python app.py ...`` in a subprocess with its own Gradio temp folder."""

    def __init__(self, tmp: Path, *args: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.temp = tmp / "gradio"
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_TEMP_DIR": str(self.temp),
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

    def fetch(self, url: str) -> bytes:
        with urllib.request.urlopen(url if url.startswith("http") else self.url + url.lstrip("/"), timeout=60) as r:
            return r.read()

    def log_tail(self, chars: int = 3000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-chars:]

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
    limits = ["--max-seconds", "8", "--max-file-size", "1mb"]  # the test files are smaller; the demo clip is not
    s = Server(tmp, "--weights", str(tiny_weights), *limits, "--concurrency", "2")
    s.wait()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium): the browser tests did not run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _open(browser, server, width: int = 1400, height: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(server.url, wait_until="load")
    page.wait_for_selector("#edit-button", timeout=120_000)
    return page


def _client(server, tmp_path):
    from gradio_client import Client

    return Client(server.url, download_files=str(tmp_path / "downloads"), verbose=False)


def _page_text(config: dict) -> str:
    return json.dumps([c.get("props", {}).get("value") for c in config["components"]])


def _tone(path: Path, freq: int, seconds: float) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=16000:duration={seconds}", str(path))
    return path


def _dominant_hz(path) -> float:
    wav = load_audio(path)
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spectrum) * 16000 / len(wav))


def _server_paths(text: str, *known: Path) -> list[str]:
    """Absolute paths of this machine in ``text``: the known folders, and anything that looks like one."""
    found = [str(p) for p in known if str(p) in text]
    found += re.findall(r"""(?:^|["'\s(=\[])((?:/|[A-Za-z]:\\)[^"'\s),;\]]+)""", text)
    return found


def _no_error_badges(page) -> None:
    """Gradio marks every output of a failed event with an "Error" badge; the page must not."""
    assert page.get_by_text("Error", exact=True).count() == 0


# -- without a browser -------------------------------------------------------------------------------------


def test_the_app_module_imports_without_side_effects():
    import importlib

    importlib.import_module("app")
    from webapp import server
    from webapp.page import build_demo

    assert server.STATE.pipeline is None  # nothing loaded at import
    demo = build_demo(server.AppState(panel="panel"))
    names = {d.get("api_name") for d in demo.config["dependencies"] if d.get("api_visibility", "public") == "public"}
    assert {"edit", "check_face"} <= names
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    checks = [d for d in demo.config["dependencies"] if ("check-button" in [ids.get(i) for i, _ in d["targets"]])]
    # the server's check: a click while one runs is queued, not dropped (the "Checking ..." line is the other)
    assert [d["trigger_mode"] for d in checks if d.get("js") is None] == ["always_last"]


@pytest.mark.slow
def test_the_tiny_weights_page_says_so(server):
    text = _page_text(server.config())
    assert "meaningless" in text  # the tiny banner
    assert "tiny test weights" in text  # the weights panel says where each model came from


def test_help_and_readme_describe_every_control():
    from webapp.page import build_demo
    from webapp.parts import EDIT_CONTROLS, FACE_CONTROLS
    from webapp.server import AppState

    run = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    help_text = " ".join(run.stdout.split())
    readme = (ROOT / "README.md").read_text()
    section = " ".join(readme[readme.index("## The app") : readme.index("### On a Hugging Face Space")].split())
    flags = re.findall(r"--[a-z][a-z-]+", run.stdout)
    assert "--batch-size" in flags  # a server setting, not a visitor's control
    for flag in set(flags) - {"--help"}:
        assert flag in section, f"the README's 'The app' does not mention {flag}"
    for name, (label, _) in {**FACE_CONTROLS, **EDIT_CONTROLS}.items():
        assert label in help_text and label in section, label
        from joygen.config import option_help

        assert " ".join(option_help(name).split()) in help_text  # the help line of joygen.config
    assert "Check the face" in section and "Check the face" in help_text
    page = _page_text(build_demo(AppState(panel="panel")).config)
    assert "batch" not in page.lower()  # no batch size control on the page


@pytest.mark.slow
def test_the_readme_client_snippet_works(server, media, tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if 'api_name="/edit"' in b)
    downloads = repr(str(tmp_path / "downloads"))
    code = (
        block.replace('Client("http://127.0.0.1:7860/")', f"Client({server.url!r}, download_files={downloads})")
        .replace('"talk.mp4"', repr(str(media["face_mp4"])))
        .replace('"voice.mp3"', repr(str(media["tone_wav"])))
    )
    assert server.url in code  # the snippet still names its server the way this test expects
    names: dict = {}
    exec(compile(code, "README snippet", "exec"), names)  # noqa: S102 - the README's own example, on test files
    assert probe(names["video"]).video.codec == "h264"
    assert probe(names["side_by_side"]).video.width == 2 * probe(names["video"]).video.width
    assert names["images"] and "checked in" in names["details"]
    report = Path(names["report"]).read_text()
    assert json.loads(report)["inputs"]["audio"]["path"] == media["tone_wav"].name  # the name it was sent with
    assert _server_paths(report, server.temp, ROOT, Path.home(), Path("/tmp")) == []  # noqa: S108


@pytest.mark.slow
def test_two_clients_at_once_get_their_own_results(server, media, tmp_path):
    from gradio_client import handle_file

    voices = {220: _tone(tmp_path / "a.wav", 220, 1.0), 440: _tone(tmp_path / "b.wav", 440, 1.6)}
    jobs = {
        hz: _client(server, tmp_path / str(hz)).submit(
            handle_file(str(media["face_noaudio_mp4"])), handle_file(str(path)), api_name="/edit"
        )
        for hz, path in voices.items()
    }
    results = {hz: job.result(timeout=600) for hz, job in jobs.items()}
    assert results[220][0] != results[440][0]
    for hz, result in results.items():
        video = result[0]
        assert abs(_dominant_hz(video) - hz) < 5  # each result carries its own request's voice
        assert abs(probe(video).duration - (1.0 if hz == 220 else 1.6)) < 0.15
        side = probe(result[1])
        assert side.video.width == 2 * probe(video).video.width  # original | edited


@pytest.mark.slow
def test_errors_are_readable_and_the_app_keeps_serving(server, media, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = _client(server, tmp_path)
    blank = tmp_path / "room.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=beige:s=320x240:r=25", "-t", "0.6", "-pix_fmt", "yuv420p", str(blank))
    long_voice = _tone(tmp_path / "long.wav", 300, 10.0)  # the server's limit is 8 s
    cases = [
        (blank, media["tone_wav"], "no face found in any of the 15 frames of 'room.mp4'"),
        (media["face_mp4"], media["face_noaudio_mp4"], "'face_noaudio.mp4' is a video with no sound track"),
        (media["face_mp4"], long_voice, "'long.wav' lasts 10.0 s; the limit here is 8 s"),
    ]
    for video, audio, message in cases:
        with pytest.raises(AppError, match=re.escape(message)) as caught:
            client.predict(handle_file(str(video)), handle_file(str(audio)), api_name="/edit")
        assert _server_paths(str(caught.value), server.temp, tmp_path) == []  # names as sent, never server paths
    result = client.predict(handle_file(str(media["face_mp4"])), handle_file(str(media["tone_wav"])), api_name="/edit")
    assert probe(result[0]).video.codec == "h264"


# -- in a browser ------------------------------------------------------------------------------------------


def _covered(page, selector: str) -> bool:
    """True if something (a progress overlay) lies over the centre of the element."""
    return page.evaluate(
        """(sel) => { const el = document.querySelector(sel); const r = el.getBoundingClientRect();
           const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
           return !(top === el || el.contains(top)); }""",
        selector,
    )


@pytest.mark.browser
@pytest.mark.slow
def test_browser_the_example_shows_each_stage_as_it_finishes(server, browser, tmp_path):
    page = _open(browser, server)
    page.locator("button.gallery-item").first.click()  # the demo clip and speech
    page.wait_for_selector("#video-note .jg-note.ok", timeout=120_000)
    page.wait_for_selector("#audio-note .jg-note.ok", timeout=120_000)
    page.locator("#edit-button").click()
    # mid-run: the lip plot and a depth preview are there, uncovered, while the frames are counted
    page.wait_for_selector("#depth-gallery img", state="visible", timeout=LONG)
    page.wait_for_selector("#lip-plot img", state="visible", timeout=LONG)
    progress = page.locator("#progress").inner_text()
    page.screenshot(path=str(tmp_path / "app-example-mid-run.png"))
    counted = re.search(r"(\d+) / 127 frames", progress)
    assert counted and int(counted.group(1)) < 127, progress  # frames done / total, before the end
    assert "elapsed" in progress and "example_5s.mp4" in progress
    page.evaluate("document.getElementById('lip-plot').scrollIntoView({block: 'center'})")
    assert not _covered(page, "#lip-plot img")
    page.evaluate("document.getElementById('depth-gallery').scrollIntoView({block: 'center'})")
    assert not _covered(page, "#depth-gallery img")
    # the end: side by side first, the summary, the timings with their total first, the report
    page.wait_for_selector("#out-side video", timeout=LONG)
    page.wait_for_selector("#progress .jg-done", timeout=120_000)
    assert "127 frames" in page.locator("#summary").inner_text()
    assert page.locator("#out-video video").count() == 1
    table = page.locator("#timings").inner_text()
    assert table.index("Total") < table.index("frames/s") < table.index("Drawing the new mouth")
    assert page.locator("#report a").count() >= 1
    _no_error_badges(page)
    page.screenshot(path=str(tmp_path / "app-example-done.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_edits_a_photo(server, browser, astronaut_png, media, tmp_path):
    from PIL import Image

    blank = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (230, 220, 200)).save(blank)
    page = _open(browser, server)
    page.locator("#tab-photo-button, button[role=tab]:has-text('Photo')").first.click()
    page.locator("#in-photo input[type=file]").set_input_files(str(blank))
    page.locator("#in-audio input[type=file]").set_input_files(str(media["tone_wav"]))
    page.wait_for_selector("#photo-note .jg-note.error", timeout=120_000)
    assert "wall.png" in page.locator("#photo-note").inner_text()  # no face: said beside the photo, at once
    page.locator("#edit-button").click()  # and if edited anyway: said in full where the progress was
    page.wait_for_selector("#progress .jg-failed", timeout=LONG)
    assert "no face found in the image 'wall.png'" in page.locator("#progress").inner_text()
    _no_error_badges(page)
    page.screenshot(path=str(tmp_path / "app-photo-no-face.png"))

    page.locator("#in-photo button[aria-label='Remove Image']").click()
    page.locator("#in-photo input[type=file]").set_input_files(str(astronaut_png))
    page.wait_for_selector("#photo-note .jg-note.ok", timeout=120_000)
    page.locator("#edit-button").click()
    page.wait_for_selector("#out-video video", timeout=LONG)
    src = page.locator("#out-video video").get_attribute("src")
    assert src.endswith(".mp4")
    edited = tmp_path / "edited.mp4"
    edited.write_bytes(server.fetch(src))
    info = probe(edited)
    assert info.video.codec == "h264" and (info.video.width, info.video.height) == (512, 512)
    assert abs(info.duration - 1.0) < 0.15  # the photo, held for the 1 s voice
    assert "astronaut.png (Photo tab)" in page.locator("#progress").inner_text()
    page.screenshot(path=str(tmp_path / "app-photo.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_the_selected_voice_tab_decides(server, browser, media, tmp_path):
    other = _tone(tmp_path / "other voice.wav", 220, 1.0)
    chosen = _tone(tmp_path / "chosen voice.wav", 440, 1.2)
    page = _open(browser, server)
    page.locator("#in-video input[type=file]").set_input_files(str(media["face_noaudio_mp4"]))
    page.locator("#in-audio input[type=file]").set_input_files(str(other))
    page.wait_for_selector("#audio-note .jg-note.ok", timeout=120_000)
    page.locator("button[role=tab]:has-text('Voice from any file')").click()
    page.locator("#edit-button").click()  # the selected tab is empty: it says so, it does not take the other one
    page.wait_for_selector("#progress .jg-failed", timeout=120_000)
    assert "Voice from any file tab is selected but holds nothing" in page.locator("#progress").inner_text()
    page.locator("#in-voice-file input[type=file]").set_input_files(str(chosen))
    page.wait_for_selector("#voice-file-note .jg-note.ok", timeout=120_000)
    page.locator("#edit-button").click()
    page.wait_for_selector("#progress .jg-done", timeout=LONG)
    assert "chosen voice.wav (Voice from any file tab)" in page.locator("#progress").inner_text()
    href = page.locator("#report a").first.get_attribute("href")
    report_text = server.fetch(href).decode()
    report = json.loads(report_text)
    assert report["inputs"]["audio"]["path"] == "chosen voice.wav"
    assert report["inputs"]["video"]["path"] == "face_noaudio.mp4"
    assert _server_paths(report_text, server.temp, tmp_path, ROOT, Path.home(), Path("/tmp")) == []  # noqa: S108
    assert "platform" not in report["versions"]
    edited = tmp_path / "edited.mp4"
    edited.write_bytes(server.fetch(page.locator("#out-video video").get_attribute("src")))
    assert abs(_dominant_hz(edited) - 440) < 5  # the chosen voice, not the other tab's
    page.screenshot(path=str(tmp_path / "app-voice-tab.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_check_the_face(server, browser, media, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = _open(browser, server)
    page.locator("#in-video input[type=file]").set_input_files(str(media["face_mp4"]))
    page.wait_for_selector("#video-note .jg-note.ok", timeout=120_000)
    page.locator("#check-button").click()
    page.wait_for_selector("#check-gallery img", state="visible", timeout=300_000)
    assert page.locator("#check-gallery img").count() == 4  # boxes, crop, mask, mouth depth over the crop
    first = page.locator("#check-line").inner_text()
    assert "face.mp4" in first and "frame 0" in first
    page.screenshot(path=str(tmp_path / "app-check.png"))
    mask_before = page.locator("#check-gallery img").nth(2).get_attribute("src")
    # a control changed, checked again: no upload needed
    page.get_by_text("Face crop and blend").click()
    top = page.locator("#opt-upper_boundary_ratio input[type=number]")
    for _ in range(10):  # the accordion mounts its controls as it opens: a value typed before that is reset to 0.5
        top.fill("0.8")
        top.press("Tab")
        try:
            page.wait_for_function(  # the slider shows it too: the page holds the value, not only the text box
                "() => document.querySelector('#opt-upper_boundary_ratio input[type=range]')?.value === '0.8'"
                " && document.querySelector('#opt-upper_boundary_ratio input[type=number]')?.value === '0.8'",
                timeout=5_000,
            )
            break
        except PlaywrightTimeout:
            continue
    page.locator("#check-button").click()
    page.wait_for_selector("#check-line:has-text('Checking the face')", timeout=60_000)  # said at once
    page.wait_for_function(  # then the check's own answer, or its failure beside the face
        "() => { const t = document.querySelector('#check-line')?.innerText || '';"
        " return !t.includes('Checking the face') && (t.includes('face.mp4') || !!document.querySelector("
        "'#video-note .jg-note.error')); }",
        timeout=300_000,
    )
    page.screenshot(path=str(tmp_path / "app-check-again.png"))
    said = {k: page.locator(k).inner_text() for k in ("#check-line", "#video-note")}
    mask_after = page.evaluate("() => document.querySelectorAll('#check-gallery img')[2]?.getAttribute('src')")
    log = server.log_tail()
    assert top.input_value() == "0.8"  # (a CI run once saw 0.5 here: the value typed was reset as the controls mounted)
    assert mask_after != mask_before, f"the mask did not change with the mouth-mask top: {said}; server: {log}"
    _no_error_badges(page)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_a_sound_file_on_the_video_box_is_explained_beside_it(
    server, browser, demo_audio, demo_video, tmp_path
):
    page = _open(browser, server)
    page.locator("#in-video input[type=file]").set_input_files(str(demo_audio))
    page.wait_for_selector("#video-note .jg-note.error", timeout=120_000)
    note = page.locator("#video-note").inner_text()
    assert "xinwen_5s.mp3 is a sound file with no pictures" in note and "/" not in note.split("(")[0]
    assert page.locator(".toast-body").count() == 0  # beside the input, not a toast at the edge
    page.screenshot(path=str(tmp_path / "app-mp3-on-video.png"))
    page.locator("#in-video input[type=file]").set_input_files(str(demo_video))  # 1.1 MB, over this server's 1 MB
    page.wait_for_function(
        "() => document.getElementById('video-note').innerText.includes('largest upload')", timeout=120_000
    )
    assert "example_5s.mp4 is 1.1 MB; the largest upload here is 1.0 MB" in page.locator("#video-note").inner_text()
    assert page.locator(".toast-body").count() == 0
    _no_error_badges(page)
    page.screenshot(path=str(tmp_path / "app-too-big.png"))


@pytest.mark.browser
@pytest.mark.slow
def test_browser_on_a_phone_edit_is_near_and_a_tap_shows_the_progress(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto(server.url, wait_until="load")
    page.wait_for_selector("#edit-button", timeout=120_000)
    button = page.locator("#edit-button").bounding_box()
    assert button["y"] + button["height"] < 2 * 844  # within a short scroll of the top, before examples and options
    page.screenshot(path=str(tmp_path / "app-phone.png"))
    page.locator("#edit-button").tap()  # nothing uploaded: the answer is in the progress element, scrolled to
    page.wait_for_selector("#progress .jg-failed", timeout=120_000)
    page.wait_for_function(
        "() => { const r = document.getElementById('progress').getBoundingClientRect(); "
        "return r.top >= 0 && r.top < window.innerHeight; }",
        timeout=30_000,
    )
    page.screenshot(path=str(tmp_path / "app-phone-after-tap.png"))


@pytest.mark.browser
@pytest.mark.slow
def test_browser_without_weights_the_page_says_so_at_the_top(browser, tmp_path):
    s = Server(tmp_path, "--weights", str(tmp_path / "empty"))
    try:
        s.wait()
        text = _page_text(s.config())
        assert "weights are missing" in text and "weights import" in text and "JOYGEN_WEIGHTS_REPO" in text
        page = _open(browser, s)
        panel = page.locator("#no-weights")
        box = panel.bounding_box()
        assert box["y"] < 1000 and box["height"] > 0  # above the fold
        assert "weights tiny tiny-weights" in panel.inner_text() and "--weights tiny-weights" in panel.inner_text()
        assert page.locator("#edit-button").is_disabled() and page.locator("#check-button").is_disabled()
        assert "weights are missing" in page.locator("#buttons-reason").inner_text()
        page.screenshot(path=str(tmp_path / "app-no-weights.png"))
    finally:
        s.stop()


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
