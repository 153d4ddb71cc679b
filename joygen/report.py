"""Per-stage timing, progress reporting, the bookkeeping of one run and the JSON run report."""

from __future__ import annotations

import datetime
import platform
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager

from .errors import Cancelled

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total)


class StageTimer:
    """Accumulates wall-clock seconds per named stage."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def iterate(self, stage: str, iterable: Iterable):
        """Yield from ``iterable``, charging the time spent producing each item to ``stage``."""
        it = iter(iterable)
        while True:
            with self(stage):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.seconds.items()}


class Progress:
    """Reports (stage, done, total) to a callback and, optionally, a tqdm bar on stderr for the frames."""

    def __init__(self, callback: ProgressCallback | None, show_bar: bool):
        self.callback = callback
        self.show_bar = show_bar
        self._bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.callback:
            self.callback(stage, done, total)
        if self.show_bar and stage == "edit":
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc="editing frames", unit="frame", file=sys.stderr)
            self._bar.update(done - self._bar.n)
        elif self.show_bar and stage != "done":
            print(f"joygen: {stage.replace('_', ' ')} ...", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def versions() -> dict:
    import cv2
    import diffusers
    import numpy as np
    import torch
    import transformers

    from . import __version__
    from .media import ffmpeg_version

    return {
        "joygen": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "ffmpeg": ffmpeg_version(),
        "platform": platform.platform(),
    }


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def build_report(
    *,
    inputs: dict,
    output: str,
    timeline,
    source_frames: int | None,
    frames_without_face: list[int],
    box_source: dict,
    depth: bool,
    expression_rows: int | None,
    config: dict,
    timings: dict[str, float],
    total_s: float,
    device: str,
    dtype: str,
    tiny_weights: bool,
    warnings: list[str],
    weights: list[dict],
    sync: dict | None = None,
    voice: dict | None = None,
    stability: dict | None = None,
) -> dict:
    """The JSON report of one edit (see the README, "Command line")."""
    from .timeline import FPS

    return {
        "created": now_iso(),
        "inputs": inputs,
        "output": {
            "path": output,
            "frames": timeline.num_frames,
            "fps": FPS,
            "seconds": round(timeline.num_frames / FPS, 3),
        },
        "frames": {
            "audio_samples_16k": timeline.num_samples,
            "expression_frames": timeline.expression_frames,
            "whisper_frames": timeline.whisper_frames,
            "audio_chunks": timeline.audio_chunks,
            "output_frames": timeline.num_frames,
            "source_frames": source_frames,  # None: the video was longer than needed
            "ping_pong": source_frames is not None,
            "frames_without_face": frames_without_face,
            "box_source": box_source,
        },
        "mode": {
            "depth": depth,
            "note": "mouth depth from the audio-driven 3D face"
            if depth
            else "no-depth mode: the depth condition is the latent of a black image",
            "expression_rows": expression_rows,
        },
        "config": config,
        "timings_s": timings,
        "total_s": round(total_s, 3),
        "device": device,
        "dtype": dtype,
        "tiny_weights": tiny_weights,
        "warnings": warnings,
        "weights": weights,
        "sync": sync,
        "voice": voice,  # voice activity per frame (runs) and the silent spans acted on
        "stability": stability,  # what silence_mode and smoothing did, and the jitter measures
        "versions": versions(),
    }


# An absolute path inside a string: "/..." or "C:\\..." at the start or after a space, quote, bracket or "=".
_ABSOLUTE_PATH = re.compile(r"""(?:(?<=^)|(?<=[\s'"(\[=]))(?:/|[A-Za-z]:\\)[^\s'"(),;\]]+""")


def public_report(report: dict, names: dict[str, str] | None = None) -> dict:
    """A copy of a run's report that can be handed to anyone: no path on the server, no host details.

    For a public app (a Hugging Face Space): the files a visitor uploaded appear by the names they had, the
    outputs and weight files by their file names (sizes and sha256 stay), the cache folder setting is left
    out, and so is the host's platform string (``versions.platform``). Any other absolute path in a string
    (a warning, a weights source) is cut to its last component.

    Args:
        report: what `build_report` returned (or the JSON report read back).
        names: server path -> the name to show instead (e.g. an upload's temporary path -> its uploaded name).
    """

    def walk(value):
        if isinstance(value, dict):
            return {public_text(k, names) if isinstance(k, str) else k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return public_text(value, names) if isinstance(value, str) else value

    out = walk(report)
    video = out.get("config", {}).get("video")
    if isinstance(video, dict) and "cache_dir" in video:
        video["cache_dir"] = None
    if isinstance(out.get("versions"), dict):
        out["versions"].pop("platform", None)
    return out


def _last_component(path: str) -> str:
    """The last component of a path written with / or \\ (what a report may show of a server path)."""
    return re.split(r"[/\\]", path.rstrip("/\\"))[-1] or "(a folder on the server)"


def public_text(text: str, names: dict[str, str] | None = None) -> str:
    """``text`` with each path of ``names`` replaced by its name and any other absolute path cut to its last
    component (for messages and reports shown to visitors of a public app)."""
    for path, name in sorted(((str(k), v) for k, v in (names or {}).items() if str(k)), key=lambda kv: -len(kv[0])):
        text = text.replace(path, name)
    return _ABSOLUTE_PATH.sub(lambda m: _last_component(m.group(0)), text)


FRAME_PREVIEW_EVERY_S = 1.0  # the latest edited frame is handed to ``preview`` at most this often
TINY_WARNING = "tiny random weights: this output is meaningless (a smoke test of the code paths)"


class RunLog:
    """The bookkeeping of one call: stage timer, progress, warnings, wall clock."""

    def __init__(
        self, progress: ProgressCallback | None, show: bool, warning: str | None, cancel: threading.Event | None
    ):
        self.timer, self.bar = StageTimer(), Progress(progress, show)
        self.warnings = [warning] if warning else []  # warning: the first one (the tiny weights')
        self.cancel = cancel
        self.started = time.perf_counter()
        self.last_frame_preview = -float("inf")

    def frame_preview_due(self) -> bool:
        """True at most once per `FRAME_PREVIEW_EVERY_S` (the first batch always gets one)."""
        now = time.perf_counter()
        if now - self.last_frame_preview < FRAME_PREVIEW_EVERY_S:
            return False
        self.last_frame_preview = now
        return True

    def check_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the edit was cancelled")
