"""Helpers shared by the tests (fixtures live in conftest.py): paths, ffmpeg, the CLI, decoding, tolerances."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN = Path(os.environ.get("JOYGEN_GOLDEN_DIR", SHARED / "golden"))
DATA = Path(os.environ.get("JOYGEN_DATA_DIR", SHARED / "data"))
EXAMPLES = ROOT / "assets" / "examples"  # the demo clip and speech ship with the repository


def ffmpeg(*args: str) -> None:
    from joygen.media import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m joygen ARGS`` in a subprocess, offline."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "joygen", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def run_edit(video, audio, weights, output, *extra: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m joygen edit`` with the four usual arguments."""
    args = ["--video", str(video), "--audio", str(audio), "--weights", str(weights), "--output", str(output)]
    return run_cli("edit", *args, *extra, cwd=cwd)


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| relative to max |e| (the golden READMEs' yardstick)."""
    return float(np.abs(np.asarray(actual, np.float64) - expected).max() / max(np.abs(expected).max(), 1e-12))


def count_frames(path) -> int:
    """Frames of a video file, decoded."""
    from joygen.media import ffmpeg_exe, probe

    info = probe(path)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return len(raw) // (info.video.width * info.video.height)


def decode_all(path) -> np.ndarray:
    """Every frame of a video at 25 fps, ``[N, H, W, 3]`` uint8 RGB."""
    from joygen.media import ffmpeg_exe, probe

    info = probe(path)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", "fps=25", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, info.video.height, info.video.width, 3)
