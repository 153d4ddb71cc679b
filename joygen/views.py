"""What the app shows of a run, as plain data (no UI library here): images as uint8 RGB arrays, tables, text.

* progress: `PROGRESS_STEPS` (the pipeline's progress stages in words) and `RunClock`, which turns the
  pipeline's ``(stage, done, total)`` reports into a line with frames done, elapsed time and time left;
* results: `depth_panels` (face crop | mouth depth over it | the depth alone, colour-coded, near = warm, at the
  face box's aspect), `lip_plot` (mouth opening in mm and loudness in dB on their own axes, silent spans
  shaded), `timing_rows` (plain stage names, the total first), `summary_line`, `frame_preview`;
* the face check: `face_check_images` (`joygen.face_check.FaceCheck` drawn: boxes, crop, mask, depth).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .timeline import FPS

if TYPE_CHECKING:  # names only: importing the pipeline would load every model library
    from .face_check import FaceCheck
    from .outputs import DepthPreview
    from .pipeline import JoyGenOutput

SILENCE_DB = -60.0  # loudness floor of the plot (dBFS)
PREVIEW_HEIGHT = 360  # px: height of the live frame preview
LEGEND_HEIGHT = 26  # px: the near/far colour bar under a depth image

# The pipeline's progress stages (`joygen.report.Progress`), as a person reads them.
PROGRESS_STEPS = {
    "probe": "Checking the inputs",
    "voice_activity": "Finding where the voice is silent",
    "audio_features": "Listening to the voice",
    "audio_to_motion": "Lip motion from the voice (stage 1)",
    "edit": "Editing the frames",
    "encode": "Encoding the video",
    "lip_sync": "Measuring the lip sync",
    "done": "Done",
}

# The pipeline's timed stages (`JoyGenOutput.timings`), as a person reads them.
TIMING_NAMES = {
    "probe": "Checking the inputs",
    "audio_decode": "Decoding the voice",
    "voice_activity": "Voice activity (silent spans)",
    "audio_features": "Voice features (Whisper)",
    "audio_to_motion": "Lip motion from the voice (stage 1)",
    "video_cache": "Looking up the video cache",
    "video_decode": "Decoding the video",
    "face_detection": "Finding the face",
    "crop": "Cropping the face",
    "reference_latents": "Encoding the face (VAE)",
    "face_parsing": "Face mask for the blend",
    "reconstruction": "3D face fit",
    "mouth_depth": "Mouth depth (stage 2)",
    "generate": "Drawing the new mouth (stage 3)",
    "blend": "Blending into the frame",
    "video_encode": "Encoding the video",
    "intermediates": "Saving intermediates",
    "lip_sync": "Measuring the lip sync",
}

# Colours (RGB) of the drawings.
MOUTH_COLOUR = (214, 51, 132)
STAGE1_COLOUR = (235, 150, 190)  # stage 1's own mouth opening, thin, where the drawn one differs
LOUDNESS_COLOUR = (70, 110, 200)
SILENCE_SHADE = (236, 236, 236)
FACE_BOX_COLOUR = (40, 200, 90)
CONTEXT_BOX_COLOUR = (250, 190, 40)
MASK_TINT = (214, 51, 132)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# -- progress --------------------------------------------------------------------------------------------


class RunClock:
    """The progress line of one run, from the pipeline's ``(stage, done, total)`` reports.

    Elapsed time counts from the clock's creation and never restarts; time left is estimated, for the steps that
    count (the frames; the two videos the lip sync scores), from the pace so far (said once one unit is done).
    """

    COUNTED = {"edit": "frames", "lip_sync": "videos scored (the edit, then the source with its own voice)"}

    def __init__(self, now: Callable[[], float] = time.monotonic):
        self.now = now
        self.started = now()
        self.stage, self.done, self.total = "probe", 0, 1
        self._starts: dict[str, tuple[float, int]] = {}  # counted step -> (time, done) of its first report

    def update(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, max(total, 1)
        if stage in self.COUNTED and stage not in self._starts:
            self._starts[stage] = (self.now(), done)

    @property
    def elapsed(self) -> float:
        return self.now() - self.started

    @property
    def label(self) -> str:
        return PROGRESS_STEPS.get(self.stage, self.stage.replace("_", " ").capitalize())

    @property
    def fraction(self) -> float | None:
        """How far the current step is (None: a step without a count, such as encoding)."""
        return min(1.0, self.done / self.total) if self.stage in self.COUNTED else None

    def seconds_left(self) -> float | None:
        """Time left in a counted step, from its pace so far; None before its first unit or in other steps."""
        start = self._starts.get(self.stage)
        if start is None or self.done >= self.total:
            return None
        t0, d0 = start
        if self.done <= d0:
            return None
        pace = (self.now() - t0) / (self.done - d0)
        return pace * (self.total - self.done)

    def text(self) -> str:
        """E.g. "Editing the frames: 48 / 127 frames · 12 s elapsed · about 20 s left"."""
        parts = [self.label]
        if self.stage in self.COUNTED:
            parts[0] += f": {self.done} / {self.total} {self.COUNTED[self.stage]}"
        parts.append(f"{_duration(self.elapsed)} elapsed")
        left = self.seconds_left()
        if left is not None:
            parts.append(f"about {_duration(left)} left for the {'frames' if self.stage == 'edit' else 'lip sync'}")
        elif self.stage == "edit":
            parts.append("time left: known after the first batch")
        elif self.stage == "lip_sync":
            parts.append("time left: known once the edit is scored")
        return " · ".join(parts)


# -- depth -----------------------------------------------------------------------------------------------


def colourise_depth(depth: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 depth (255 nearest, 0 background) -> ``(H, W, 3)`` RGB: near warm (red), far cool
    (blue), background black."""
    depth = np.asarray(depth)
    if depth.ndim == 3:
        depth = depth[..., 0]
    rgb = cv2.applyColorMap(depth, cv2.COLORMAP_TURBO)[..., ::-1].copy()
    rgb[depth == 0] = 0
    return rgb


def depth_over(image: np.ndarray, depth: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    """The colour-coded depth laid over ``image`` (same size) where the depth is not background."""
    depth = np.asarray(depth)
    if depth.ndim == 3:
        depth = depth[..., 0]
    if depth.shape != image.shape[:2]:
        depth = cv2.resize(depth, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    colour = colourise_depth(depth).astype(np.float32)
    weight = (depth > 0).astype(np.float32)[..., None] * alpha
    return np.round(image.astype(np.float32) * (1 - weight) + colour * weight).astype(np.uint8)


def depth_legend(width: int, height: int = LEGEND_HEIGHT) -> np.ndarray:
    """A colour bar from far (left) to near (right), labelled, ``(height, width, 3)``."""
    bar = colourise_depth(np.tile(np.linspace(1, 255, width).astype(np.uint8), (height, 1)))
    im = Image.fromarray(bar)
    draw = ImageDraw.Draw(im)
    font = _font(max(10, height * 11 // 20))
    for text, anchor, x in (("far", "lm", 6), ("depth", "mm", width // 2), ("near", "rm", width - 6)):
        draw.text(
            (x, height // 2),
            text,
            fill=(255, 255, 255),
            font=font,
            anchor=anchor,
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    return np.asarray(im)


def _natural(image: np.ndarray, aspect: float | None) -> np.ndarray:
    """A 256x256 crop resized back to its face box's aspect (width / height), keeping its height."""
    if not aspect or abs(aspect - 1) < 0.01:
        return image
    h = image.shape[0]
    return cv2.resize(image, (max(1, round(h * aspect)), h), interpolation=cv2.INTER_AREA)


def _box_aspect(box) -> float | None:
    return None if box is None else (box[2] - box[0]) / max(1, box[3] - box[1])


def depth_panels(previews: list[DepthPreview]) -> list[tuple[np.ndarray, str]]:
    """One image per preview: the face crop, the mouth depth over it and the depth alone (near = warm), at the
    face box's aspect, with a near/far legend above (the page's captions sit at the bottom); captioned with the frame and its time."""
    out = []
    for p in previews:
        aspect = _box_aspect(getattr(p, "box", None))
        face = _natural(p.face, aspect)
        depth = _natural(np.ascontiguousarray(p.depth[..., 0]), aspect)
        gap = np.full((face.shape[0], 6, 3), 255, np.uint8)
        row = np.concatenate([face, gap, depth_over(face, depth), gap, colourise_depth(depth)], axis=1)
        legend = depth_legend(row.shape[1])
        out.append((np.concatenate([legend, row], axis=0), f"frame {p.frame} ({p.frame / FPS:.2f} s)"))
    return out


# -- the lip plot ----------------------------------------------------------------------------------------


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    span = max(hi - lo, 1e-9)
    raw = span / count
    step = 10 ** np.floor(np.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(first, hi + step * 1e-6, step)]


def _spans(active: list | np.ndarray) -> list[tuple[int, int]]:
    """``[first, last]`` frame runs where ``active`` is false (silent)."""
    runs, start = [], None
    for i, a in enumerate(list(active) + [True]):
        if not a and start is None:
            start = i
        elif a and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def lip_plot(trajectory: dict | None, width: int = 1000, height: int = 380) -> np.ndarray | None:
    """The lip trajectory as an image: the mouth opening the 3D stage draws (mm, left axis; stage 1's own opening
    as a thin line where smoothing or silence_mode changed it) and the voice's loudness (dB, right axis) over
    time; frames the trajectory marks silent (``voice_active`` false) shaded.

    Without stage 1 (the no-depth mode) only the loudness is drawn. The x axis ends with the last frame.
    """
    if not trajectory or not len(trajectory.get("loudness_db", [])):
        return None
    db = np.maximum(np.asarray(trajectory["loudness_db"], np.float64), SILENCE_DB)
    n = len(db)
    t = np.arange(n) / trajectory.get("fps", FPS)
    opening = trajectory.get("mouth_open_mm")
    opening = None if opening is None or not len(opening) else np.asarray(opening, np.float64)[:n]
    own = trajectory.get("mouth_open_stage1_mm")
    own = None if opening is None or own is None else np.asarray(own, np.float64)[:n]
    if own is not None and np.allclose(own, opening, atol=1e-3):  # nothing changed it: one line says it all
        own = None
    active = trajectory.get("voice_active")

    im = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    font, small = _font(15), _font(13)
    left, right, top, bottom = 56, 56, 70, 48  # the top leaves room for the legend under the label badge
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    t_end = max(float(t[-1]), 1 / FPS)

    def x_of(v):
        return x0 + (np.asarray(v) / t_end) * (x1 - x0)

    if active is not None and len(active):
        for a, b in _spans(np.asarray(active[:n], bool)):
            draw.rectangle([x_of(max(a - 0.5, 0) / FPS), y0, x_of(min(b + 0.5, n - 1) / FPS), y1], fill=SILENCE_SHADE)
    draw.rectangle([x0, y0, x1, y1], outline=(170, 170, 170))

    # x axis: time
    for v in _ticks(0, t_end, 8):
        x = float(x_of(v))
        draw.line([x, y1, x, y1 + 5], fill=(120, 120, 120))
        draw.text((x, y1 + 8), f"{v:g}", fill=(60, 60, 60), font=small, anchor="mt")
    draw.text(((x0 + x1) / 2, height - 6), "time (s)", fill=(60, 60, 60), font=font, anchor="mb")

    def curve(values, lo, hi, colour, side, width=3):
        scale = (y1 - y0) / max(hi - lo, 1e-9)
        pts = list(zip(x_of(t).tolist(), (y1 - (values - lo) * scale).tolist()))
        draw.line(pts, fill=colour, width=width, joint="curve")
        if side is None:  # a second line on an axis already drawn
            return
        for v in _ticks(lo, hi, 5):
            y = y1 - (v - lo) * scale
            if side == "left":
                draw.line([x0 - 5, y, x0, y], fill=colour)
                draw.text((x0 - 8, y), f"{v:g}", fill=colour, font=small, anchor="rm")
            else:
                draw.line([x1, y, x1 + 5, y], fill=colour)
                draw.text((x1 + 8, y), f"{v:g}", fill=colour, font=small, anchor="lm")

    top_db = max(0.0, float(db.max()))
    curve(db, SILENCE_DB, top_db, LOUDNESS_COLOUR, "right")
    draw.text((x1 + 8, y0 - 14), "dB", fill=LOUDNESS_COLOUR, font=font, anchor="lm")
    if opening is not None:
        top_mm = max(1.0, float(max(opening.max(), own.max() if own is not None else 0.0)) * 1.1)
        curve(opening, 0.0, top_mm, MOUTH_COLOUR, "left")
        if own is not None:  # on top, thin: visible where it runs with the drawn one too
            curve(own, 0.0, top_mm, STAGE1_COLOUR, None, width=1)
        draw.text((x0 - 8, y0 - 14), "mm", fill=MOUTH_COLOUR, font=font, anchor="rm")

    # legend: what each line is
    items = ([("mouth opening (mm)", MOUTH_COLOUR)] if opening is not None else []) + [
        ("voice loudness (dB)", LOUDNESS_COLOUR)
    ]
    if own is not None:
        items.insert(1, ("stage 1's own (mm)", STAGE1_COLOUR))
    if active is not None and not all(active[:n]):
        items.append(("no voice", SILENCE_SHADE))
    x = x0 + 10
    for text, colour in items:
        if colour == SILENCE_SHADE:
            draw.rectangle([x, y0 - 21, x + 22, y0 - 7], fill=colour, outline=(170, 170, 170))
        else:
            draw.line([x, y0 - 14, x + 22, y0 - 14], fill=colour, width=1 if colour == STAGE1_COLOUR else 3)
        draw.text((x + 28, y0 - 14), text, fill=(40, 40, 40), font=small, anchor="lm")
        x += 40 + draw.textlength(text, font=small)
    return np.asarray(im)


# -- tables and text -------------------------------------------------------------------------------------


def timing_rows(result: JoyGenOutput) -> list[list]:
    """``[what, seconds, share %]``: the total (with the frames per second) first, then each stage, longest first."""
    total = float(result.report.get("total_s") or sum(result.timings.values()) or 1e-9)
    rate = f"{result.num_frames} frames, {result.num_frames / total:.2f} frames/s"
    rows = [[f"Total ({rate})", round(total, 2), 100.0]]
    for k, v in sorted(result.timings.items(), key=lambda kv: -kv[1]):
        rows.append([TIMING_NAMES.get(k, k.replace("_", " ")), round(v, 2), round(100 * v / total, 1)])
    return rows


SILENCE_DID = {  # what silence_mode did in the silent spans, for the summary line
    "close": ", mouth closed",
    "keep-source": ", the video's own mouth kept",
    "off": ", left to stage 1 (silence_mode off)",
}


def summary_line(result: JoyGenOutput) -> str:
    """One line: frames, seconds, frames per second, frames without a face, silent spans, and the lip sync."""
    total = float(result.report.get("total_s") or sum(result.timings.values()) or 1e-9)
    n = result.num_frames
    no_face = len(result.frames_without_face)
    text = (
        f"{n} frames ({n / result.fps:.2f} s of video) in {total:.1f} s, {n / total:.2f} frames/s; "
        f"{no_face} frame{'s' if no_face != 1 else ''} without a face."
    )
    silence = (result.report.get("stability") or {}).get("silence") or {}
    spans = silence.get("spans") or []
    if spans:
        seconds = sum(last - first + 1 for first, last in spans) / result.fps
        did = SILENCE_DID.get(silence.get("mode"), "")
        text += f" Silent voice: {len(spans)} span{'s' if len(spans) != 1 else ''}, {seconds:.1f} s{did}."
    elif silence:
        shortest = ((result.report.get("config") or {}).get("stability") or {}).get("silence_seconds")
        text += f" Silent voice: no pause of {shortest:g} s or more." if shortest else " Silent voice: none."
    sync = result.sync
    if sync:
        text += " Lip sync: " + (sync["summary"] if sync.get("available") else sync.get("how", ""))
    return text


def frame_preview(data: dict, height: int = PREVIEW_HEIGHT) -> tuple[np.ndarray, str]:
    """The pipeline's ("frame", data) preview as one image: the source | the edited frame, ``height`` px."""
    source, edited = data["source"], data["edited"]
    frame = source if edited is None else edited
    h, w = frame.shape[:2]
    width = max(1, round(w * height / h))
    pair = [cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in (source, frame)]
    gap = np.full((height, 6, 3), 255, np.uint8)
    image = np.concatenate([pair[0], gap, pair[1]], axis=1)
    if edited is not None:
        note = ""
    elif data.get("kept"):
        note = " (silent voice: the video's own mouth)"
    else:
        note = " (no face: passed through)"
    return image, f"original | edited, frame {data['frame']} ({data['frame'] / FPS:.2f} s){note}"


# -- the face check --------------------------------------------------------------------------------------


def _label(draw: ImageDraw.ImageDraw, xy, text: str, colour, font) -> None:
    x, y = xy
    box = draw.textbbox((x, y), text, font=font, anchor="lb")
    draw.rectangle([box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3], fill=(0, 0, 0))
    draw.text((x, y), text, fill=colour, font=font, anchor="lb")


def face_check_images(check: FaceCheck, max_side: int = 720) -> list[tuple[np.ndarray, str]]:
    """`FaceCheck` as captioned images: the frame with its boxes, the crop, the paste-back mask, the depth."""
    frame = check.frame
    scale = min(1.0, max_side / max(frame.shape[:2]))
    shown = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else frame
    im = Image.fromarray(np.ascontiguousarray(shown))
    draw = ImageDraw.Draw(im)
    thick = max(2, round(max(shown.shape[:2]) / 240))
    font = _font(max(12, round(max(shown.shape[:2]) / 40)))
    cx1, cy1, cx2, cy2 = (v * scale for v in check.context_box)
    fx1, fy1, fx2, fy2 = (v * scale for v in check.crop_box)
    draw.rectangle([cx1, cy1, cx2, cy2], outline=CONTEXT_BOX_COLOUR, width=thick)
    draw.rectangle([fx1, fy1, fx2, fy2], outline=FACE_BOX_COLOUR, width=thick)
    for px, py in np.asarray(check.face.points) * scale:
        draw.ellipse([px - thick, py - thick, px + thick, py + thick], fill=FACE_BOX_COLOUR)
    _label(draw, (max(cx1, 4) + 4, max(cy1, 0) + font.size + 8), "context (blended area)", CONTEXT_BOX_COLOUR, font)
    _label(draw, (max(fx1, 4) + 4, fy2 - 6), "face box (edited crop)", FACE_BOX_COLOUR, font)
    images = [
        (np.asarray(im), f"frame {check.frame_index}: face box (green), blend context (yellow)"),
        (check.crop, "the crop the editor sees (256×256)"),
    ]

    tint = np.asarray(MASK_TINT, np.float32)
    weight = (check.mask.astype(np.float32) / 255.0)[..., None] * 0.6
    masked = np.round(check.context.astype(np.float32) * (1 - weight) + tint * weight).astype(np.uint8)
    images.append((masked, "paste-back mask (tinted: re-drawn)"))

    if check.mouth_depth is not None:
        crop = check.crop
        over = depth_over(crop, check.face_depth, alpha=0.35) if check.face_depth is not None else crop
        over = depth_over(over, check.mouth_depth, alpha=0.8)
        legend = depth_legend(crop.shape[1])  # above: the caption covers the bottom edge
        images.append((np.concatenate([legend, over], axis=0), "3D fit: depth, near = warm"))
    return images


def face_check_text(check: FaceCheck) -> str:
    """One line under the check's images: which box, how sure, what the images mean."""
    box_source = "the DWPose landmark box" if check.face.box_source == "landmarks" else "the MTCNN box"
    others = check.face.faces_in_frame - 1
    text = (
        f"frame {check.frame_index} ({check.time_s:.2f} s), checked in {check.seconds:.1f} s: cropped with "
        f"{box_source}, face score {check.face.score:.2f}"
    )
    if others:
        text += f"; {others} other face{'s' if others > 1 else ''} in the frame (the largest is edited)"
    text += ". Tinted pixels of the mask take the new mouth; everything else keeps the source."
    if check.mouth_depth is not None:
        text += " The 3D fit carries the frame's own expression; its mouth (what the editor is told) is brightest."
    return text
