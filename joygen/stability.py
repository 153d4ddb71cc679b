"""A still mouth where the new voice is silent, and no jitter (docs/stability.md has the design and the numbers).

* **Silence** (`plan_silence`, `shape_expressions`): the silent spans of `joygen.voice_activity` that are long
  enough (``silence_seconds``) get, with ``silence_mode``

  - ``close``: a closed, neutral mouth of this person in the 3D stage. Stage 1's expression over the span is
    averaged, and the part of it that moves the upper outer-lip points against the lower ones facing them is
    removed (`closed_expression`, with the BFM expression rows of those points: `FaceModel.lip_gap_basis`).
    What is left keeps the lips where the neutral face has them relative to each other; identity, pose and
    lighting stay the frame's (they are other coefficients). One expression per span, so the mouth is still;
    it is eased in and out over ``silence_ease_frames`` frames inside the span (`ease_weights`), so it rests
    between the last voiced frame and the next one and never delays an onset;
  - ``keep-source``: the source frames' own mouths: those frames are not edited, and the edit fades in and out
    over ``crossfade_frames`` frames inside the span (the `joygen.editor.paste_back.EditFader`);
  - ``off``: stage 1's motion, as the official code.

* **Expressions** (`smooth_expressions`): Savitzky-Golay (order `SG_ORDER`) over the whole sequence, known in full
  after stage 1. Zero lag (a symmetric window), and, unlike a moving average or a Gaussian of the same width,
  it keeps the peaks and slopes of the mouth's opening: it fits a parabola to each window.

* **Boxes** (`BoxSmoother`): frames arrive batch by batch, so a causal filter, the one-euro filter (Casiez et
  al., CHI 2012): a first-order low-pass whose cutoff rises with the box's speed, steady when the head is still
  and without lag when it moves. It runs over SOURCE frames in the order they first appear, so a frame shown
  twice (ping-pong) gets the same box both times; it restarts after a frame without a face and on a jump (a cut,
  another face), and never puts the box further than `BOX_MAX_SHIFT` of its size from the frame's own box.

* **Jitter** (`motion_stats`): frame-to-frame motion (mean ``|x[t+1] - x[t]|``) and jitter (mean
  ``|x[t+1] - 2 x[t] + x[t-1]|``, the shake that smooth motion does not have) of a per-frame quantity, over
  all frames, the voiced ones and the silent ones. The report and ``joygen eval`` use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .boxes import iou
from .timeline import FPS

SG_ORDER = 2  # Savitzky-Golay polynomial order
BOX_DERIVATIVE_CUTOFF = 1.0  # Hz: the one-euro filter's low-pass on the box speed
BOX_RESET_IOU = 0.3  # a new box overlapping the smoothed one less than this restarts the filter (a cut)
BOX_MAX_SHIFT = 0.05  # the smoothed box's sides stay within this fraction of the frame box's width / height
PINV_RCOND = 1e-6  # relative singular-value floor of the lip-gap basis' pseudo-inverse


# -- silence ------------------------------------------------------------------------------------------------------


def ease_weights(num_frames: int, spans: list[tuple[int, int]], ease_frames: int) -> np.ndarray:
    """``[N]`` in [0, 1]: how far each frame is taken to its span's resting mouth.

    Inside a span, a frame ``d`` frames from the nearest voiced frame (the clip's ends do not count) gets
    ``sin^2(pi/2 * min(1, d / (ease_frames + 1)))``: 0 outside the spans, 1 from ``ease_frames + 1`` frames in.
    """
    w = np.zeros(num_frames)
    for a, b in spans:
        j = np.arange(a, b + 1)
        d = np.full(len(j), np.inf)
        if a > 0:
            d = np.minimum(d, j - a + 1)
        if b < num_frames - 1:
            d = np.minimum(d, b - j + 1)
        w[a : b + 1] = np.sin(np.pi / 2 * np.minimum(1.0, d / (ease_frames + 1))) ** 2
    return w


def keep_mask(num_frames: int, spans: list[tuple[int, int]], fade_frames: int) -> np.ndarray:
    """``[N]`` bool: the frames of the spans more than ``fade_frames`` from a voiced frame (keep-source)."""
    keep = np.zeros(num_frames, bool)
    for a, b in spans:
        lo = a + fade_frames if a > 0 else a
        hi = b - fade_frames if b < num_frames - 1 else b
        if hi >= lo:
            keep[lo : hi + 1] = True
    return keep


@dataclass
class SilencePlan:
    """What ``silence_mode`` does to each frame of one edit."""

    mode: str  # the mode applied: "close", "keep-source" or "off"
    spans: list[tuple[int, int]]  # silent spans long enough to act on (inclusive frame numbers), in every mode
    weights: np.ndarray  # [N] close: how far each frame's expression goes to the span's closed one
    keep: np.ndarray  # [N] bool keep-source: frames passed through with their own mouth
    note: str | None = None

    def to_report(self) -> dict:
        return {
            "mode": self.mode,
            "spans": [list(s) for s in self.spans],
            "frames_closed": int((self.weights >= 1.0).sum()),
            "frames_easing": int(((self.weights > 0) & (self.weights < 1.0)).sum()),
            "frames_kept": int(self.keep.sum()),
            "note": self.note,
        }


def plan_silence(voice, stability, use_depth: bool, crossfade_frames: int) -> SilencePlan:
    """The spans of ``voice`` (`joygen.voice_activity.VoiceActivity`) that ``stability`` (`StabilityConfig`) acts on.

    ``close`` needs the 3D stage; in the no-depth mode it keeps the source's mouths instead (said in ``note``).
    """
    n = len(voice)
    spans = voice.silent_spans(max(1, round(stability.silence_seconds * FPS)))
    mode, note = stability.silence_mode, None
    if mode == "close" and not use_depth:
        mode, note = "keep-source", "close needs the 3D stage; without it (no-depth mode) silent spans keep the source"
    weights = ease_weights(n, spans, stability.silence_ease_frames) if mode == "close" else np.zeros(n)
    keep = keep_mask(n, spans, crossfade_frames) if mode == "keep-source" else np.zeros(n, bool)
    return SilencePlan(mode, spans, weights, keep, note)


def closed_expression(expressions: np.ndarray, gap_basis: np.ndarray) -> np.ndarray:
    """The mean of ``expressions`` ``[K, 64]`` less its part in the row space of ``gap_basis`` ``[G, 64]``.

    That is the smallest change (in expression coefficients, which the BFM scales to unit prior variance) that
    puts every upper outer-lip point where the neutral face has it relative to the lower point facing it: the
    mouth is closed as this person's neutral face closes it, the rest of the expression is kept.
    """
    g = np.asarray(gap_basis, np.float64)
    mean = np.asarray(expressions, np.float64).mean(axis=0)
    return mean - np.linalg.pinv(g, rcond=PINV_RCOND) @ (g @ mean)


def smooth_expressions(expressions: np.ndarray, window: int) -> np.ndarray:
    """Savitzky-Golay (order `SG_ORDER`, ``window`` frames, zero lag) along time of ``[N, 64]`` expressions.

    A clip shorter than the window uses the longest odd window it holds; one shorter than 4 frames is returned
    as it is (a parabola through 3 points is the points).
    """
    from scipy.signal import savgol_filter

    x = np.asarray(expressions, np.float64)
    w = min(window, len(x) if len(x) % 2 else len(x) - 1)
    if w <= SG_ORDER + 1:
        return x
    return savgol_filter(x, w, SG_ORDER, axis=0, mode="interp")


def shape_expressions(expressions: np.ndarray, num_frames: int, plan: SilencePlan, stability, gap_basis) -> np.ndarray:
    """What the 3D stage receives for the edit's ``num_frames`` frames: stage 1's expressions smoothed
    (``stability.smoothing``), then closed over the silent spans (``plan``, mode close).

    With neither, stage 1's array itself is returned (the official path, untouched).
    """
    close = plan.mode == "close" and bool(plan.spans)
    if not stability.smoothing and not close:
        return expressions
    x = np.asarray(expressions[:num_frames], np.float64)
    if stability.smoothing and stability.expression_window > 1:
        x = smooth_expressions(x, stability.expression_window)
    if close:
        x = x.copy()
        for a, b in plan.spans:
            w = plan.weights[a : b + 1, None]
            x[a : b + 1] = (1 - w) * x[a : b + 1] + w * closed_expression(x[a : b + 1], gap_basis)
    return x.astype(np.float32)


# -- boxes --------------------------------------------------------------------------------------------------------


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass with ``cutoff`` Hz at time step ``dt``."""
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroBox:
    """The one-euro filter on a box's centre and size ``[cx, cy, w, h]``; speed measured in box sizes per second,
    so ``beta`` means the same at every resolution."""

    def __init__(self, min_cutoff: float, beta: float, fps: float = FPS):
        self.min_cutoff, self.beta, self.dt = min_cutoff, beta, 1.0 / fps
        self.value: np.ndarray | None = None
        self.speed = np.zeros(4)

    def reset(self) -> None:
        self.value, self.speed = None, np.zeros(4)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.value is None:
            self.value = np.asarray(x, np.float64).copy()
            return self.value
        a_d = _alpha(BOX_DERIVATIVE_CUTOFF, self.dt)
        self.speed = a_d * (x - self.value) / self.dt + (1 - a_d) * self.speed
        scale = np.sqrt(max(self.value[2] * self.value[3], 1.0))
        a = _alpha(self.min_cutoff + self.beta * np.abs(self.speed) / scale, self.dt)
        self.value = a * x + (1 - a) * self.value
        return self.value


def _centre_size(box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], np.float64)


def _corners(cs: np.ndarray) -> np.ndarray:
    return np.concatenate([cs[:2] - cs[2:] / 2, cs[:2] + cs[2:] / 2])


class BoxSmoother:
    """Face boxes smoothed over source frames, causally, each source frame once.

    Call it for every output frame in order with the frame's source index and its `Face` (or None). A source
    frame seen for the first time is filtered (frames first appear in source order, also under ping-pong); a
    source frame seen again gets the box it got the first time. A face from the video cache already carries its
    smoothed box (``box``) and the detector's (``detected_box``): the filter goes on from there.
    """

    def __init__(self, min_cutoff: float, beta: float):
        self.filter = OneEuroBox(min_cutoff, beta)
        self.done: dict[int, tuple[float, float, float, float] | None] = {}  # source frame -> smoothed box
        self.last = -1  # the last source frame filtered

    def __call__(self, source: int, face, cached: bool = False):
        if source in self.done:
            box = self.done[source]
            if face is None or box is None or cached:
                return face
            return dataclasses.replace(face, box=box, detected_box=face.box)
        if face is None or source != self.last + 1:
            self.filter.reset()
        self.last = source
        if face is None:
            self.done[source] = None
            return None
        raw = face.raw_box if cached else face.box
        prev = self.filter.value
        if prev is not None and iou(_corners(prev), raw) < BOX_RESET_IOU:
            self.filter.reset()
        restart = self.filter.value is None
        smoothed = _corners(self.filter(_centre_size(raw)))
        if restart:
            smoothed = np.asarray(raw, np.float64)  # the first box of a run is the frame's own, to the bit
        w, h = raw[2] - raw[0], raw[3] - raw[1]
        limit = BOX_MAX_SHIFT * np.array([w, h, w, h])
        smoothed = np.clip(smoothed, np.asarray(raw) - limit, np.asarray(raw) + limit)
        if cached:  # the cached crop was made with the cached box: continue from exactly that
            smoothed = np.asarray(face.box, np.float64)
        self.filter.value = _centre_size(smoothed)
        box = tuple(float(v) for v in smoothed)
        self.done[source] = box
        return face if cached else dataclasses.replace(face, box=box, detected_box=tuple(float(v) for v in raw))


# -- jitter -------------------------------------------------------------------------------------------------------


def box_smoother(stability) -> BoxSmoother | None:
    """The face-box filter a `StabilityConfig` asks for (None: smoothing off, every frame's own box)."""
    return BoxSmoother(stability.box_min_cutoff, stability.box_beta) if stability.smoothing else None


def motion_stats(values: np.ndarray, voice: np.ndarray | None = None, digits: int = 4) -> dict:
    """Frame-to-frame motion and jitter of a per-frame quantity, over all, voiced and silent frames.

    Args:
        values: ``[N]`` (a number per frame), ``[N, D]`` (a point) or ``[N, P, D]`` (points); NaN where a frame
            has no value (no face). For points, the distance is the mean over the points.
        voice: ``[N]`` bool voice activity; None gives only ``all``.

    Returns:
        ``{"all"|"speech"|"silence": {"steps", "motion", "jitter"}}``: ``motion`` the mean ``|x[t+1] - x[t]|`` over
        the ``steps`` pairs of consecutive frames that both have a value (and both belong to the class), ``jitter``
        the mean ``|x[t+1] - 2 x[t] + x[t-1]|`` over such triples; None where there are none.
    """
    x = np.asarray(values, np.float64)
    x = x.reshape(len(x), 1, 1) if x.ndim == 1 else x.reshape(len(x), -1, x.shape[-1])
    step = np.linalg.norm(x[1:] - x[:-1], axis=-1).mean(-1) if len(x) > 1 else np.zeros(0)
    bend = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1).mean(-1) if len(x) > 2 else np.zeros(0)
    classes = {"all": np.ones(len(x), bool)}
    if voice is not None:
        v = np.asarray(voice, bool)
        classes.update(speech=v, silence=~v)
    out = {}
    for name, m in classes.items():
        s_ok = m[1:] & m[:-1] & np.isfinite(step) if len(x) > 1 else np.zeros(0, bool)
        b_ok = m[2:] & m[1:-1] & m[:-2] & np.isfinite(bend) if len(x) > 2 else np.zeros(0, bool)
        out[name] = {
            "steps": int(s_ok.sum()),
            "motion": round(float(step[s_ok].mean()), digits) if s_ok.any() else None,
            "jitter": round(float(bend[b_ok].mean()), digits) if b_ok.any() else None,
        }
    return out


def box_points(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` boxes -> ``[N, 2, 2]`` corner points (top-left, bottom-right), for `motion_stats`."""
    return np.asarray(boxes, np.float64).reshape(-1, 2, 2)


def shape_points(points: np.ndarray) -> np.ndarray:
    """``[N, P, 2]`` points less their per-frame centroid: the shape's motion without the head's."""
    p = np.asarray(points, np.float64)
    return p - p.mean(axis=1, keepdims=True)


def stability_report(st, plan: SilencePlan, active: np.ndarray, log, trajectory: dict) -> dict:
    """The report's ``stability`` block: what silence_mode and smoothing (``st``, a `StabilityConfig`) did, and
    the jitter they left: box motion from ``log`` (`joygen.outputs.FrameLog`), and with the 3D stage the mouth
    opening (stage 1's and the one drawn, from ``trajectory``) and the lip shape."""
    jitter = {
        "box_px": {
            "detected": motion_stats(box_points(log.detected), active, 3),
            "crop": motion_stats(box_points(log.boxes), active, 3),
        }
    }
    with_3d = "mouth_open_stage1_mm" in trajectory
    if with_3d:
        jitter["mouth_open_mm"] = {
            "stage1": motion_stats(np.asarray(trajectory["mouth_open_stage1_mm"]), active),
            "edited": motion_stats(np.asarray(trajectory["mouth_open_mm"]), active),
        }
        jitter["lip_shape_px"] = motion_stats(shape_points(log.lips), active, 3)
    smoothing = {"expressions": None, "boxes": None}
    if st.smoothing and with_3d and st.expression_window > 1:
        smoothing["expressions"] = {"filter": "Savitzky-Golay", "window": st.expression_window, "order": SG_ORDER}
    if st.smoothing:
        smoothing["boxes"] = {
            "filter": "one-euro, causal, over source frames",
            "min_cutoff_hz": st.box_min_cutoff,
            "beta": st.box_beta,
            "derivative_cutoff_hz": BOX_DERIVATIVE_CUTOFF,
            "max_shift": BOX_MAX_SHIFT,
            "reset_iou": BOX_RESET_IOU,
        }
    return {"silence": plan.to_report(), "smoothing": smoothing, "jitter": jitter}
