"""What an edit keeps and writes as its batches finish.

* `EditWriter`: the edited video (and the side-by-side one), encoded in background threads, with the fade
  around frames that pass through (`EditFader`); finished under temporary names, placed complete.
* `FrameLog`: per output frame, compact for long clips: no face, which box cropped it (and the detector's own box
  before smoothing), the edited mesh's lip and jaw points; ``faces.json`` rows when intermediates are asked for.
* `Previews`: a few depth maps spread over the clip, handed to the caller as soon as they exist.
* `save_intermediates`: the per-stage images of ``--intermediates``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .boxes import face_crop
from .config import PipelineConfig
from .editor.paste_back import EditFader
from .errors import NoFaceError
from .face3d.bfm import OUTER_LIP_468
from .files import place_file
from .frames import FrameBatch
from .media import MediaInfo
from .timeline import FPS
from .video import SourceFrames, ThreadedWriter, VideoWriter

MAX_PREVIEWS = 8  # depth previews kept in the output, spread over the clip
SIDE_BY_SIDE_HEIGHT = 720  # px; the side-by-side video is scaled down to at most this height
JAW_POINTS = 17  # dlib-68 points 0-16: the jaw line


SIDE_BY_SIDE_CAPTIONS = ("original", "edited")  # drawn at the top left of each half


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` written at its top left, white on a dark box, sized to the frame (in place)."""
    h = frame.shape[0]
    scale = max(0.4, h / 720)
    thick = max(1, round(2 * scale))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = round(8 * scale)
    x2, y2 = min(frame.shape[1], tw + 3 * pad), min(h, th + base + 3 * pad)
    frame[pad // 2 : y2, pad // 2 : x2] = frame[pad // 2 : y2, pad // 2 : x2] // 3
    cv2.putText(
        frame,
        text,
        (pad * 3 // 2, th + pad * 3 // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thick,
        cv2.LINE_AA,
    )
    return frame


def side_by_side_frame(source: np.ndarray, edited: np.ndarray, height: int) -> np.ndarray:
    """``source | edited``, each scaled to ``height`` px (area filter) and captioned, as one frame."""
    h, w = source.shape[:2]
    width = round(w * height / h / 2) * 2
    if (h, w) != (height, width):
        source = cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA)
        edited = cv2.resize(edited, (width, height), interpolation=cv2.INTER_AREA)
    halves = [caption(np.array(im), text) for im, text in zip((source, edited), SIDE_BY_SIDE_CAPTIONS)]
    return np.concatenate(halves, axis=1)


class EditWriter:
    """The edited video (and optionally source | edited side by side) of one run, in its work folder.

    The encoders start with the first batch (a still image's true size is known only once decoded). Use as a
    context manager: leaving it with an exception stops the encoders and deletes their partial files.
    """

    def __init__(self, work: Path, audio, ainfo: MediaInfo, cfg: PipelineConfig, side_by_side: bool):
        self.work, self.audio, self.ainfo, self.cfg = work, audio, ainfo, cfg
        self.want_side_by_side = side_by_side
        self.fader = EditFader(cfg.face.crossfade_frames)
        self.edited: ThreadedWriter | None = None
        self.side: ThreadedWriter | None = None

    def __enter__(self) -> EditWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:
            for w in (self.edited, self.side):
                if w is not None:
                    w.abort()

    def _encoder(self, name: str, width: int, height: int) -> ThreadedWriter:
        v = self.cfg.video
        return ThreadedWriter(
            VideoWriter(
                self.work / name,
                width,
                height,
                audio_path=self.audio,
                audio_stream=self.ainfo.audio.index,
                fps=FPS,
                crf=v.crf,
                preset=v.preset,
                audio_bitrate=v.audio_bitrate,
                lossless=v.lossless,
                log_dir=self.work,
            )
        )

    def write(self, batch: FrameBatch) -> None:
        """Queue the batch's frames (edited, or passed through) in order."""
        if self.edited is None:
            h, w = batch.items[0].image.shape[:2]
            self.edited = self._encoder("edited.mp4", w, h)
            if self.want_side_by_side:
                sh = min(h, SIDE_BY_SIDE_HEIGHT) // 2 * 2
                self.side = self._encoder("side_by_side.mp4", 2 * round(w * sh / h / 2) * 2, sh)
        for it in batch:
            self._emit(self.fader.push(it.image, it.edited))

    def _emit(self, ready) -> None:
        for source, frame in ready:
            self.edited.write(frame)
            if self.side is not None:
                self.side.write(side_by_side_frame(source, frame, self.side.size[1]))

    def finish(self, output: Path, side_by_side: Path | None) -> Path:
        """Flush the fade, finish the encoders, and place the files complete at their destinations."""
        self._emit(self.fader.flush())
        self.edited.close()
        if self.side is not None:
            self.side.close()
        final = place_file(self.edited.path, output)
        if self.side is not None:
            place_file(self.side.path, side_by_side, "side-by-side video")
        return final


class FrameLog:
    """What happened to each output frame, kept compact (arrays, not per-frame objects) for long clips."""

    BOX_SOURCES = ("none", "mtcnn", "landmarks")  # what cropped each frame's face (none: no face)

    def __init__(self, n: int, keep_faces: bool, with_3d: bool):
        self.num_frames = n
        self.no_face: list[int] = []
        self.box_source = np.zeros(n, np.int8)  # index into BOX_SOURCES
        self.boxes = np.full((n, 4), np.nan, np.float32)  # the box each frame was cropped with
        self.detected = np.full((n, 4), np.nan, np.float32)  # the frame's own box (before smoothing over time)
        self.faces: list[dict] | None = [] if keep_faces else None  # faces.json, only for --intermediates
        self.lips = np.full((n, len(OUTER_LIP_468), 2), np.nan, np.float32) if with_3d else None
        self.jaw = np.full((n, JAW_POINTS, 2), np.nan, np.float32) if with_3d else None

    def add(self, batch: FrameBatch) -> None:
        for it in batch:
            face = it.face
            if face is None:
                self.no_face.append(it.index)
            else:
                self.box_source[it.index] = self.BOX_SOURCES.index(face.box_source)
                self.boxes[it.index], self.detected[it.index] = face.box, face.raw_box
            if self.faces is not None:
                row = {"frame": it.index, "source_frame": it.source, "face": face.to_dict() if face else None}
                self.faces.append(row)
            if self.lips is not None and it.depth is not None:
                self.lips[it.index] = it.depth.landmarks468[list(OUTER_LIP_468)] + face.box[:2]
                self.jaw[it.index] = it.depth.landmarks68[:JAW_POINTS]

    def box_sources(self) -> dict:
        """Which box cropped each frame: counts, and runs ``[first, last, source]`` of consecutive frames."""
        runs, start = [], 0
        src = self.box_source
        for i in range(1, len(src) + 1):
            if i == len(src) or src[i] != src[start]:
                runs.append([start, i - 1, self.BOX_SOURCES[src[start]]])
                start = i
        counts = {name: int((src == k).sum()) for k, name in enumerate(self.BOX_SOURCES)}
        return {"counts": counts, "runs": runs}

    def trajectory(self) -> dict:
        """Per-frame lip (20 outer-lip points) and jaw (17 points) positions of the edited mesh, frame px."""
        return {"lips": self.lips, "jaw": self.jaw}


@dataclass
class DepthPreview:
    frame: int  # output frame number
    face: np.ndarray  # (256, 256, 3) uint8 RGB face crop
    depth: np.ndarray  # (256, 256, 3) uint8 depth image the editor received
    box: tuple[int, int, int, int] | None = None  # the face box the crop was cut from (its aspect)


class Previews:
    """Up to `MAX_PREVIEWS` depth maps spread evenly over the clip's frames, collected as batches finish."""

    def __init__(self, num_frames: int):
        self.wanted = set(np.linspace(0, num_frames - 1, min(num_frames, MAX_PREVIEWS)).round().astype(int).tolist())
        self.items: list[DepthPreview] = []

    def add(self, batch: FrameBatch) -> bool:
        """Keep the batch's wanted frames; True if any was new."""
        new = [
            DepthPreview(it.index, face_crop(it.image, it.face.crop_box), it.depth.depth256, it.face.crop_box)
            for it in batch.with_face
            if it.depth is not None and it.index in self.wanted
        ]
        self.items += new
        return bool(new)


def intermediates_folder(path: str | Path | None, use_depth: bool) -> Path | None:
    """Create ``--intermediates``' sub-folders (face256, generated256, depth)."""
    if path is None:
        return None
    folder = Path(path)
    for sub in ("face256", "generated256") + (("depth",) if use_depth else ()):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


def save_intermediates(folder: Path, batch: FrameBatch) -> None:
    """The face crop, the generated face and the depth map of every edited frame, as PNG."""
    for it in batch.with_face:
        name = f"{it.index:06d}.png"
        cv2.imwrite(str(folder / "face256" / name), face_crop(it.image, it.face.crop_box)[..., ::-1])
        cv2.imwrite(str(folder / "generated256" / name), it.generated[..., ::-1])
        if it.depth is not None:
            cv2.imwrite(str(folder / "depth" / name), it.depth.depth256[..., 0])


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return [None if v is None else v for v in np.where(np.isnan(value), None, np.round(value, 2)).tolist()]
    return value


def write_run_files(
    folder: Path, log: FrameLog, trajectory: dict, expressions: np.ndarray | None, shaped: np.ndarray | None = None
) -> None:
    """``faces.json``, ``lip_trajectory.json``, ``expressions.npy`` (stage 1) and ``expressions_3d.npy`` (what the
    3D stage received: smoothed, closed over silences) of ``--intermediates``."""
    (folder / "faces.json").write_text(json.dumps(log.faces, indent=1))
    (folder / "lip_trajectory.json").write_text(json.dumps({k: _jsonable(v) for k, v in trajectory.items()}))
    if expressions is not None:
        np.save(folder / "expressions.npy", expressions)
    if shaped is not None:
        np.save(folder / "expressions_3d.npy", shaped)


def check_some_face(log: FrameLog, source: SourceFrames, vinfo: MediaInfo, video, cfg: PipelineConfig) -> None:
    """Raise `NoFaceError` when not one frame showed a face (nothing to edit: no output is written)."""
    if len(log.no_face) < log.num_frames:
        return
    seen = source.num_source_frames  # None: the video was cut, only its first frames were used
    if vinfo.still_image:
        where = "the image"
    elif seen:
        where = f"any of the {seen} frames of"
    else:
        where = f"any of the first {log.num_frames} frames of"
    raise NoFaceError(
        f"no face found in {where} '{video}'; joygen needs a clearly visible, roughly frontal face "
        f"(at least {cfg.face.min_face_size} px wide)"
    )
