"""Shared fixtures.

Paths: the parity fixtures live in ``../shared/golden`` next to the checkout (``JOYGEN_GOLDEN_DIR``); tests
that need them skip, saying which folder is missing, when they are absent. The demo clip and speech come from
``../shared/data`` (``JOYGEN_DATA_DIR``) or, without it, from ``assets/examples``. Helpers shared by the tests
are in ``helpers.py``. Everything runs offline.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("JOYGEN_WEIGHTS_DIR", str(Path(__file__).parent / "_no_weights_here"))
os.environ["JOYGEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="joygen-test-cache-")  # never the user's cache

from helpers import DATA, EXAMPLES, GOLDEN, ffmpeg


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set JOYGEN_GOLDEN_DIR / JOYGEN_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def golden() -> Path:
    return _need(GOLDEN, "parity fixtures (shared/golden)")


def _demo(name: str) -> Path:
    """A demo file from ``$JOYGEN_DATA_DIR`` (default ``../shared/data``), else the copy in assets/examples."""
    for folder in (DATA, EXAMPLES):
        if (folder / name).is_file():
            return folder / name
    return _need(DATA / name, "demo media (shared/data or assets/examples)")


@pytest.fixture(scope="session")
def demo_video() -> Path:
    return _demo("example_5s.mp4")


@pytest.fixture(scope="session")
def demo_audio() -> Path:
    return _demo("xinwen_5s.mp3")


@pytest.fixture(scope="session")
def demo_wav() -> Path:
    return _demo("xinwen_5s_16k.wav")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    from joygen.weights.tiny import write_tiny_weights

    return write_tiny_weights(tmp_path_factory.mktemp("tiny") / "weights")


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_weights):
    from joygen.pipeline import JoyGenPipeline

    return JoyGenPipeline.from_pretrained(tiny_weights, device="cpu")


@pytest.fixture(scope="session")
def mtcnn():
    """MTCNN with the real weights of the facenet-pytorch wheel, as the official stage 2 configures it."""
    from joygen.face3d.mtcnn import MTCNN
    from joygen.weights.locator import WeightsLocator

    found = WeightsLocator().find("mtcnn")
    if found is None:
        pytest.skip("facenet-pytorch (the MTCNN weights) is not installed")
    return MTCNN.from_pretrained(found.folder, min_face_size=50)


@pytest.fixture(scope="session")
def astronaut_png(tmp_path_factory) -> Path:
    """``skimage.data.astronaut()``: a real face, bundled with scikit-image (512x512)."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("media") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory, astronaut_png) -> dict[str, Path]:
    """Small synthetic test files, made once per session with ffmpeg."""
    d = tmp_path_factory.mktemp("media")
    m = {
        "tone_wav": d / "tone 1s.wav",  # 1 s, 16 kHz mono
        "tone_stereo_44k": d / "tone_stereo_44k.wav",
        "silence_wav": d / "silence.wav",
        "face_noaudio_mp4": d / "face_noaudio.mp4",  # 1 s astronaut at 25 fps, no audio
        "face_mp4": d / "face.mp4",  # 1 s astronaut at 25 fps + tone
        "counter_mp4": d / "counter.mp4",  # 0.4 s, frames with distinct colours, for ordering tests
    }
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:sample_rate=16000:duration=1", str(m["tone_wav"]))
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100:duration=1.5", "-ac", "2", str(m["tone_stereo_44k"])
    )
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3", str(m["silence_wav"]))
    ffmpeg(
        "-loop",
        "1",
        "-i",
        str(astronaut_png),
        "-t",
        "1",
        "-r",
        "25",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        "10",
        str(m["face_noaudio_mp4"]),
    )
    ffmpeg(
        "-i", str(m["face_noaudio_mp4"]), "-i", str(m["tone_wav"]), "-c:v", "copy", "-c:a", "aac", str(m["face_mp4"])
    )
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25",
        "-t",
        "0.4",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        "-pix_fmt",
        "yuv444p",
        str(m["counter_mp4"]),
    )
    return m
