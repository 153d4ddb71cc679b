"""Per-stage timing, progress reporting and the JSON run report."""

from __future__ import annotations

import datetime
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager

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
