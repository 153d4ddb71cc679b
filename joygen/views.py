"""What the app shows of a run, as plain data (no UI library here): tables and preview images."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .timeline import FPS

if TYPE_CHECKING:  # names only: importing the pipeline would load every model library
    from .outputs import DepthPreview
    from .pipeline import JoyGenOutput

SILENCE_DB = -60.0  # loudness floor of the plot


def depth_strip(previews: list[DepthPreview]) -> list[tuple[np.ndarray, str]]:
    """One ``(256, 512, 3)`` image per preview, the face crop beside the mouth depth it was given, captioned."""
    return [(np.concatenate([p.face, p.depth], axis=1), f"frame {p.frame} ({p.frame / FPS:.2f} s)") for p in previews]


def trajectory_rows(trajectory: dict | None) -> list[dict]:
    """Long-form rows ``{"time_s", "series", "value"}`` for one line plot.

    The mouth opening (mm, from stage 1) and the audio loudness share the axis: the loudness is mapped
    linearly from [-60 dB, its peak] onto [0, the largest mouth opening] (or onto [0, 1] without stage 1).
    """
    if not trajectory:
        return []
    t = np.asarray(trajectory["time_s"])
    db = np.maximum(np.asarray(trajectory["loudness_db"]), SILENCE_DB)
    opening = trajectory.get("mouth_open_mm")
    top = float(np.max(opening)) if opening is not None and len(opening) else 1.0
    peak = max(float(db.max()), SILENCE_DB + 1)
    scaled = (db - SILENCE_DB) / (peak - SILENCE_DB) * top
    rows = [{"time_s": float(a), "series": "loudness (scaled)", "value": float(b)} for a, b in zip(t, scaled)]
    if opening is not None:
        rows += [{"time_s": float(a), "series": "mouth opening (mm)", "value": float(b)} for a, b in zip(t, opening)]
    return rows


def timing_rows(result: JoyGenOutput) -> list[list]:
    """``[stage, seconds, share %]`` per stage, longest first, then the total."""
    total = max(sum(result.timings.values()), 1e-9)
    rows = [
        [k, round(v, 2), round(100 * v / total, 1)] for k, v in sorted(result.timings.items(), key=lambda kv: -kv[1])
    ]
    fps = result.num_frames / total
    return rows + [
        ["total", round(total, 2), 100.0],
        [f"frames per second ({result.num_frames} frames)", round(fps, 2), None],
    ]
