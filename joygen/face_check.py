"""Check the face before a long edit: one frame through the edit's own analysis, in seconds.

    check = check_face(pipe, "talk.mp4")             # the first frame with a face
    check = check_face(pipe, "talk.mp4", frame=40)   # a frame of your choice (25 fps numbering)

The frame goes through exactly what an edit does to it (`joygen.frames.analyse`: the face box, the crop, the
paste-back's face mask, the 3D fit) under the same settings, so what the check shows is what the edit will
use: the face box and the context box the paste-back works in, the 256x256 crop the editor sees, the soft
mask that decides which pixels change, and, when the 3D stage is loaded, the reconstructed mesh's mouth depth
with the frame's own expression. Everything is returned as plain arrays (`joygen.views` draws them).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from .boxes import Box, context_box, crop_padded, face_crop
from .config import PipelineConfig
from .editor.paste_back import blend_mask
from .errors import InputError, NoFaceError
from .face3d.detection import Face
from .frames import FrameBatch, FrameItem, Models, analyse
from .media import MediaInfo, probe
from .report import StageTimer
from .timeline import FPS
from .video import SourceFrames

SCAN_FRAMES = 50  # frames (2 s at 25 fps) searched for a first face when no frame is named
SCAN_BATCH = 8  # frames given to the face detector at once while searching


@dataclass
class FaceCheck:
    """What an edit will do with one frame. Images are uint8 RGB unless said otherwise."""

    frame_index: int  # frame number at 25 fps (0 for a still image)
    num_frames: int | None  # frames of the video at 25 fps, as far as known (1 for a still image)
    frame: np.ndarray  # (H, W, 3) the whole frame
    face: Face  # the detection (box, 5 points, score, which box was used)
    crop_box: Box  # the face box: the crop the editor sees and where the new face is pasted
    context_box: Box  # the square the paste-back parses and blends in
    crop: np.ndarray  # (256, 256, 3) the editor's input
    context: np.ndarray  # (S, S, 3) the paste-back's context (black where it leaves the frame)
    mask: np.ndarray  # (S, S) uint8 paste-back mask: 255 takes the generated face, 0 keeps the source
    mouth_depth: np.ndarray | None  # (256, 256) uint8 mouth depth of the frame's own expression (255 nearest)
    face_depth: np.ndarray | None  # (h, w) uint8 depth of the whole reconstructed face, cut to the face box
    seconds: float  # how long the check took

    @property
    def time_s(self) -> float:
        return self.frame_index / FPS


@contextmanager
def _frames(info: MediaInfo, limit: int | None = None) -> Iterator[Iterator[tuple[int, np.ndarray]]]:
    """``(index, frame)`` of the video at 25 fps (one frame for a still image), the first ``limit`` at most."""
    with (
        tempfile.TemporaryDirectory(prefix="joygen-check-") as work,
        closing(SourceFrames(info, work).decode()) as decoded,
    ):
        yield islice(enumerate(decoded), limit)


@torch.no_grad()
def check_face(
    pipe,
    video: str | Path,
    *,
    frame: int | None = None,
    config: PipelineConfig | None = None,
) -> FaceCheck:
    """Run one frame of ``video`` through the edit's analysis and return what the edit would use.

    Args:
        pipe: a loaded `joygen.JoyGenPipeline`.
        video: a talking-face video or a still image.
        frame: the frame to check (25 fps numbering; past the end: the last frame). None: the first frame with
            a face among the first `SCAN_FRAMES`.
        config: the edit's settings (default the pipeline's); the face, blend and 3D settings shape the check.

    Raises:
        InputError: the file is not a readable video or image.
        NoFaceError: no face in the named frame, or none in the first `SCAN_FRAMES` frames.
    """
    started = time.perf_counter()
    cfg = pipe._settings((config or pipe.config).with_options(use_depth=pipe.has_depth))
    info = probe(video, "video")
    if info.video is None:
        kind = "an audio-only file" if info.audio is not None else "a file without pictures"
        raise InputError(f"video file '{video}' is {kind}; give a video (mp4, mov, webm, ...) or an image")
    index, image = _pick_frame(pipe, info, frame, cfg, video)
    item = FrameItem(index, index, image)
    models = Models(pipe.face_detector, pipe.face_parser, pipe.editor, pipe.depth if pipe.has_depth else None)
    with ThreadPoolExecutor(2, thread_name_prefix="joygen-check") as pool:
        analyse(FrameBatch([item]), models, cfg, None, StageTimer(), pool)
        if item.face is None:
            raise NoFaceError(f"no face found in frame {index} ({index / FPS:.2f} s) of '{video}'; pick another frame")
        face = item.face
        box = face.crop_box
        ctx = context_box(box, cfg.blend.expand)
        mouth = face_depth = None
        if pipe.has_depth:
            a = item.analysis
            (result,) = pipe.depth.render(a.coeffs[None], [a.alignment], [face], None, pool)
            mouth, face_depth = result.depth256[..., 0], result.depth_crop
    mask = blend_mask(item.analysis.parsing, box, ctx, cfg.blend.upper_boundary_ratio, cfg.blend.feather)
    return FaceCheck(
        frame_index=index,
        num_frames=info.estimated_frames,
        frame=image,
        face=face,
        crop_box=box,
        context_box=ctx,
        crop=face_crop(image, box),
        context=crop_padded(image, ctx),
        mask=mask,
        mouth_depth=mouth,
        face_depth=face_depth,
        seconds=time.perf_counter() - started,
    )


def _pick_frame(pipe, info: MediaInfo, frame: int | None, cfg: PipelineConfig, video) -> tuple[int, np.ndarray]:
    """The named frame (or the last one, if the video is shorter), or the first with a face."""
    if frame is not None:
        if frame < 0:
            raise InputError(f"frame {frame} does not exist; frames are numbered from 0")
        last = None
        with _frames(info, frame + 1) as frames:
            for last in frames:  # noqa: B007 - the last one read is the one wanted
                pass
        if last is None:
            raise InputError(f"video file '{video}' has no decodable frames")
        return last
    with _frames(info, SCAN_FRAMES) as frames:
        while batch := list(islice(frames, SCAN_BATCH)):
            found = _first_with_face(pipe, batch, cfg)
            if found is not None:
                return found
    what = "the image" if info.still_image else f"the first {SCAN_FRAMES / FPS:g} s of"
    raise NoFaceError(
        f"no face found in {what} '{video}'; joygen needs a clearly visible, roughly frontal face (at least "
        f"{cfg.face.min_face_size} px wide)" + ("" if info.still_image else ", or pick a frame where one is")
    )


def _first_with_face(pipe, frames: list[tuple[int, np.ndarray]], cfg: PipelineConfig):
    """The first ``(index, image)`` where MTCNN finds a face (the cheap search; the landmark box comes later)."""
    faces = pipe.face_detector([image for _, image in frames], False, cfg.face.iou_threshold)
    return next((pair for pair, face in zip(frames, faces) if face is not None), None)


def first_face_frame(pipe, video: str | Path, frames: int = SCAN_BATCH) -> int | None:
    """The first of the first ``frames`` frames where MTCNN finds a face, or None (a cheap check on upload)."""
    info = probe(video, "video")
    if info.video is None:
        return None
    with _frames(info, frames) as decoded:
        head = list(decoded)
    found = _first_with_face(pipe, head, pipe.config) if head else None
    return None if found is None else found[0]
