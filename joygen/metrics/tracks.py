"""Face tracks and 224x224 face crops for SyncNet, by the rules of syncnet_python's ``run_pipeline.py``.

The official pipeline (commit 6efbb1c; LatentSync and Wav2Lip's real-video scripts copy it) turns a video into
face-track clips before `joygen.metrics.protocol` scores them:

* **Tracking** (``track_shot``): tracks are built one at a time until no detection is left. Frames are walked in
  order, and within a frame its remaining detections in list order (a detection that joins the track is removed
  from the list being walked, so the one after it is skipped in that pass, as in the official loop). The first
  detection starts the track; a later one joins when it is at most ``num_failed_det`` (25) frames after the track's
  last detection and overlaps it with IoU > 0.5; one further away ends the track. A track is kept when it has more
  than ``min_track`` (100) detections; its boxes are then linearly interpolated over every frame from first to
  last, and it is dropped unless ``max(mean width, mean height) > min_face_size`` (100 px).
* **Scenes**: the official code splits shots with PySceneDetect and tracks each shot of at least ``min_track``
  frames. joygen treats the whole video as one shot (what the official code does when no cut is found).
* **Smoothing**: per frame ``s = max(h, w) / 2`` and the box centre ``x, y``, each through a 13-tap median filter
  (zero-padded at the ends, ``scipy.signal.medfilt``).
* **Crop**: pad the frame by ``bsi = int(s * (1 + 2 * 0.4))`` pixels of value 110 on every side, cut rows
  ``[int(y + bsi - s), int(y + bsi + 1.8 s))`` and columns ``[int(x + bsi - 1.4 s), int(x + bsi + 1.4 s))`` (the
  crop reaches 1.8 s below the box centre and s above it) and ``cv2.resize`` it to 224x224 (bilinear).

The detections come from joygen's MTCNN (`MTCNNFaces`) instead of S3FD, whose weights are not on any model hub
joygen pins (`DETECTORS`: the S3FD slot). That is the one deliberate difference; `tests/test_metrics_tracks.py`
checks everything after the detector against the official code's output on the golden detections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

CROP_SIZE = 224


@dataclass(frozen=True)
class TrackConfig:
    """The official ``run_pipeline.py`` options that shape tracks and crops."""

    min_track: int = 100  # a track needs more detections than this (and its shot at least this many frames)
    num_failed_det: int = 25  # frames a track may go without a detection
    min_face_size: float = 100.0  # px, mean box width or height a track must exceed
    crop_scale: float = 0.4
    iou_threshold: float = 0.5
    conf_threshold: float = 0.9  # detections below this score are ignored
    smooth_kernel: int = 13
    pad_value: int = 110


@dataclass(frozen=True)
class Detection:
    frame: int
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in px
    conf: float = 1.0
    points: tuple | None = None  # MTCNN's 5 points (x, y): eyes, nose, mouth corners; for the jitter measure


@dataclass
class FaceTrack:
    """One kept track: a box for every frame from its first to its last detection."""

    frames: np.ndarray  # [n] int64 frame indices, consecutive
    bboxes: np.ndarray  # [n, 4] float64 interpolated boxes
    detections: int  # how many of the frames had a real detection
    members: tuple[Detection, ...] = ()  # those detections, as found (before interpolation and smoothing)

    def smoothed(self, kernel: int = 13) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, y, s)``: median-filtered box centre and half size per frame (the official ``proc_track``)."""
        from scipy.signal import medfilt

        b = self.bboxes
        s = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
        y = (b[:, 1] + b[:, 3]) / 2
        x = (b[:, 0] + b[:, 2]) / 2
        return medfilt(x, kernel_size=kernel), medfilt(y, kernel_size=kernel), medfilt(s, kernel_size=kernel)

    def crop_windows(self, config: TrackConfig = TrackConfig()) -> np.ndarray:
        """``[n, 5]`` int64 ``[bsi, row0, row1, col0, col1]`` per frame, in padded-frame coordinates."""
        x, y, s = self.smoothed(config.smooth_kernel)
        return np.array([crop_window(xi, yi, si, config.crop_scale) for xi, yi, si in zip(x, y, s)], np.int64)


def as_detection(face: Detection | Mapping) -> Detection:
    if isinstance(face, Detection):
        return face
    return Detection(int(face["frame"]), tuple(float(v) for v in face["bbox"]), float(face.get("conf", 1.0)))


def box_iou(a, b) -> float:
    """The official ``bb_intersection_over_union`` (no +1, no guard: boxes here always have an area)."""
    xa, ya = max(a[0], b[0]), max(a[1], b[1])
    xb, yb = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, xb - xa) * max(0, yb - ya)
    return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def track_faces(
    faces_per_frame: Iterable[Iterable[Detection | Mapping]], config: TrackConfig = TrackConfig()
) -> list[FaceTrack]:
    """The official ``track_shot`` on one shot: per-frame detection lists -> kept, interpolated tracks."""
    from scipy.interpolate import interp1d

    pool = [[as_detection(f) for f in frame] for frame in faces_per_frame]
    tracks: list[FaceTrack] = []
    while True:
        track: list[Detection] = []
        for faces in pool:
            i = 0
            while i < len(faces):
                face = faces[i]
                if not track:
                    track.append(face)
                    del faces[i]
                    i += 1  # the official loop removes from the list it walks: the next face is skipped
                    continue
                if face.frame - track[-1].frame <= config.num_failed_det:
                    if box_iou(face.bbox, track[-1].bbox) > config.iou_threshold:
                        track.append(face)
                        del faces[i]
                        i += 1
                        continue
                else:
                    break
                i += 1
        if not track:
            return tracks
        if len(track) <= config.min_track:
            continue
        frames = np.array([f.frame for f in track])
        boxes = np.array([f.bbox for f in track], np.float64)
        every = np.arange(frames[0], frames[-1] + 1)
        interpolated = np.stack([interp1d(frames, boxes[:, j])(every) for j in range(4)], axis=1)
        width = np.mean(interpolated[:, 2] - interpolated[:, 0])
        height = np.mean(interpolated[:, 3] - interpolated[:, 1])
        if max(width, height) > config.min_face_size:
            tracks.append(FaceTrack(every.astype(np.int64), interpolated, len(track), tuple(track)))


def crop_window(x: float, y: float, s: float, crop_scale: float = 0.4) -> tuple[int, int, int, int, int]:
    """``(bsi, row0, row1, col0, col1)`` of one frame's crop in the frame padded by ``bsi`` on every side."""
    bsi = int(s * (1 + 2 * crop_scale))
    my, mx = y + bsi, x + bsi
    return (
        bsi,
        int(my - s),
        int(my + s * (1 + 2 * crop_scale)),
        int(mx - s * (1 + crop_scale)),
        int(mx + s * (1 + crop_scale)),
    )


def crop_face(image: np.ndarray, window, pad_value: int = 110) -> np.ndarray:
    """Cut one crop (``window`` from `crop_window`) out of ``image`` (H, W, 3) and resize it to 224x224."""
    import cv2

    from ..errors import InputError

    bsi, r0, r1, c0, c1 = (int(v) for v in window)
    if r1 <= r0 or c1 <= c0:  # a track of a few frames: the 13-tap median filter shrank its box to nothing
        raise InputError("the face track is too short for the official smoothing (13 frames) to give a crop")
    padded = np.pad(image, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(pad_value, pad_value))
    return cv2.resize(padded[r0:r1, c0:c1], (CROP_SIZE, CROP_SIZE))


# -- detectors ---------------------------------------------------------------------------------------------------

FaceDetectorFn = Callable[[list[np.ndarray]], list[list[tuple]]]  # per frame: (box, score) or (box, score, points)


MOUTH_CORNERS, NOSE = (3, 4), 2  # MTCNN point order: left eye, right eye, nose, left and right mouth corner


def track_jitter(track: FaceTrack, voice: np.ndarray | None) -> dict:
    """Frame-to-frame motion and jitter (`joygen.stability.motion_stats`) of a track's detections as found: the box
    (its two corners, px) and, where the detector gives points, the mouth corners relative to the nose (px, so
    that the head's own motion is left out), over all, voiced and silent frames (``voice``: the video's voice
    activity per frame, or None)."""
    from ..stability import box_points, motion_stats

    first, n = int(track.frames[0]), len(track.frames)
    boxes = np.full((n, 4), np.nan)
    corners = np.full((n, 2, 2), np.nan)
    for d in track.members:
        boxes[d.frame - first] = d.bbox
        if d.points is not None:
            p = np.asarray(d.points, np.float64)
            corners[d.frame - first] = p[list(MOUTH_CORNERS)] - p[NOSE]
    v = None if voice is None else np.asarray(voice, bool)[first : first + n]
    out = {"box_px": motion_stats(box_points(boxes), v, 3)}
    if np.isfinite(corners).any():
        out["mouth_corners_px"] = motion_stats(corners, v, 3)
    return out


class MTCNNFaces:
    """All faces per frame from joygen's MTCNN: ``[(box, score, points), ...]`` for each RGB frame of a batch
    (``points``: the 5 landmarks; detectors without them return ``(box, score)`` pairs)."""

    def __init__(self, mtcnn, conf_threshold: float = 0.9):
        self.mtcnn = mtcnn
        self.conf_threshold = conf_threshold

    def __call__(self, frames_rgb: list[np.ndarray]) -> list[list[tuple[tuple[float, float, float, float], float]]]:
        if not frames_rgb:
            return []
        out = []
        for det in self.mtcnn.detect(np.stack(frames_rgb)):
            out.append(
                [
                    (tuple(float(v) for v in box), float(p), tuple(map(tuple, np.asarray(pts, float).tolist())))
                    for box, p, pts in zip(det.boxes, det.probs, det.points)
                    if p >= self.conf_threshold
                ]
            )
        return out


MTCNN_MIN_FACE = 80  # px: smallest face searched; tracks need a mean box over 100 px (min_face_size) anyway


def mtcnn_detector(weights=None, device: str = "cpu", min_face_size: int = MTCNN_MIN_FACE, conf_threshold: float = 0.9):
    """`MTCNNFaces` with the MTCNN weights that joygen's locator finds (the facenet-pytorch wheel by default)."""
    from ..face3d.mtcnn import MTCNN
    from ..weights.locator import WeightsLocator

    locator = weights if isinstance(weights, WeightsLocator) else WeightsLocator(weights)
    found = locator.resolve(["mtcnn"])["mtcnn"]
    model = MTCNN.from_pretrained(found.folder, min_face_size=min_face_size).to(device)
    return MTCNNFaces(model, conf_threshold)


def s3fd_detector(weights=None, device: str = "cpu", **_):
    """The S3FD slot (the official detector). Not implemented: joygen scores with MTCNN tracks instead."""
    from ..errors import JoyGenError
    from ..weights.locator import WeightsLocator

    locator = weights if isinstance(weights, WeightsLocator) else WeightsLocator(weights)
    where = locator.weights_dir / "s3fd" / "sfd_face.pth"
    have = " (found at " + str(where) + ")" if where.is_file() else ""
    raise JoyGenError(
        f"the S3FD detector is not implemented in joygen{have}; its weights would be s3fd/sfd_face.pth "
        "(ByteDance/LatentSync-1.6 auxiliary/sfd_face.pth). Use --detector mtcnn (the default)"
    )


DETECTORS: dict[str, Callable] = {"mtcnn": mtcnn_detector, "s3fd": s3fd_detector}
