"""Face boxes for every frame: which pixels the editor re-draws, and the 5 points the 3D stage aligns on.

The official stage 2 picks each frame's ``box_select`` like this:

1. MTCNN finds the faces; the largest one gives the box and the 5 points.
2. DWPose gives 68 face landmarks; the *landmark box* spans them left to right and down to the chin, and
   reaches as far above landmark 29 (lower nose bridge) as the chin is below it.
3. The landmark box is used when a second detector agrees with MTCNN (IoU > 0.5) and the box is sane
   (positive size, not left of the frame); otherwise the MTCNN box.

The official second detector is S3FD, whose weights are downloaded at run time from a private server and
exist on no model hub; it also costs a full-resolution pass per frame. joygen instead gates on the box
spanned by DWPose's own 68 points: it is an independent detection of the face by a different network (as
S3FD's box is), and the gate then also guarantees that the landmarks used for the box belong to the face
MTCNN chose (DWPose runs on the whole frame and may lock onto another person). ``iou_threshold`` is the
official 0.5. Boxes are not smoothed over time here, as in the official code; `joygen.stability.BoxSmoother`
smooths them afterwards when ``smoothing`` is on.

A frame where MTCNN finds no face gets ``None`` and is passed through unedited.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..boxes import Box, iou
from ..errors import WeightsError
from .dwpose import DWPose
from .mtcnn import MTCNN

MIN_BOX_SIDE = 8  # px; smaller boxes are treated as no face
NOSE_BRIDGE = 29  # dlib-68 index the landmark box is mirrored about


@dataclass(frozen=True)
class Face:
    """One face in one frame."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in px: the official box_select
    points: np.ndarray  # (5, 2) MTCNN landmarks x, y: left eye, right eye, nose, mouth corners
    score: float  # MTCNN face probability
    mtcnn_box: tuple[float, float, float, float]
    landmarks68: np.ndarray | None = None  # (68, 2) DWPose face points, when DWPose ran
    box_source: str = "mtcnn"  # "landmarks" or "mtcnn"
    faces_in_frame: int = 1  # how many faces MTCNN found in the frame (this one is the largest)
    detected_box: tuple[float, float, float, float] | None = None  # the frame's own box when ``box`` was smoothed

    @property
    def raw_box(self) -> tuple[float, float, float, float]:
        """The box found in this frame alone (before any smoothing over time)."""
        return self.box if self.detected_box is None else self.detected_box

    @property
    def crop_box(self) -> Box:
        """The box as integers (truncated, like the official ``int(...)``): the crop and paste-back region."""
        return tuple(int(v) for v in self.box)

    def to_dict(self) -> dict:
        row = {
            "box": [round(float(v), 3) for v in self.box],
            "box_source": self.box_source,
            "score": round(self.score, 5),
            "points": np.round(self.points, 3).tolist(),
        }
        if self.detected_box is not None:
            row["detected_box"] = [round(float(v), 3) for v in self.detected_box]
        return row


def landmark_box(landmarks68: np.ndarray) -> tuple[int, int, int, int] | None:
    """The official landmark box of 68 points (cast to int32 first), or None where the official falls back."""
    lm = np.asarray(landmarks68).astype(np.int32)
    x1, x2, y2 = int(lm[:, 0].min()), int(lm[:, 0].max()), int(lm[:, 1].max())
    y1 = int(lm[NOSE_BRIDGE, 1] - (y2 - lm[NOSE_BRIDGE, 1]))
    if y2 <= y1 or x2 <= x1 or x1 < 0:  # (y1 < 0 is allowed, as in the official code)
        return None
    return x1, y1, x2, y2


def select_box(mtcnn_box, landmarks68: np.ndarray | None, iou_threshold: float = 0.5):
    """``(box, source)``: the landmark box where the landmarks agree with MTCNN, else the MTCNN box."""
    if landmarks68 is not None:
        lm = np.asarray(landmarks68)
        extent = (lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max())
        box = landmark_box(lm)
        if box is not None and iou(mtcnn_box, extent) > iou_threshold:
            return tuple(float(v) for v in box), "landmarks"
    return tuple(float(v) for v in mtcnn_box), "mtcnn"


class FaceDetector:
    """Largest face per frame, batched.

    Args:
        mtcnn: the detector (boxes and 5 points).
        dwpose: DWPose for the landmark box; None keeps the MTCNN box.
        iou_threshold: agreement needed before the landmark box is used.
    """

    def __init__(self, mtcnn: MTCNN, dwpose: DWPose | None = None, iou_threshold: float = 0.5):
        self.mtcnn = mtcnn
        self.dwpose = dwpose
        self.iou_threshold = iou_threshold

    def __call__(
        self, frames: list[np.ndarray], landmark_box: bool | None = None, iou_threshold: float | None = None
    ) -> list[Face | None]:
        """``(H, W, 3)`` uint8 RGB frames of one size -> the largest face of each, or None.

        Args:
            landmark_box: use the DWPose landmark box where it agrees with MTCNN (True needs ``dwpose``);
                False: the MTCNN box, and DWPose does not run; None: the landmark box if DWPose is loaded.
            iou_threshold: the agreement needed (default: the detector's).
        """
        if not frames:
            return []
        if landmark_box is None:
            landmark_box = self.dwpose is not None
        if landmark_box and self.dwpose is None:
            raise WeightsError(
                "the landmark box needs DWPose, which was not loaded; load the pipeline with landmark_box on "
                "(and the DWPose weights), or turn the landmark box off (`--no-landmark-box`)"
            )
        detections = self.mtcnn.detect(np.stack(frames))
        found = [k for k, det in enumerate(detections) if len(det.boxes)]
        use_dwpose = landmark_box and found
        landmarks = dict(zip(found, self.dwpose([frames[k] for k in found]))) if use_dwpose else {}
        faces: list[Face | None] = [None] * len(frames)
        for k in found:
            det = detections[k]
            mtcnn_box = tuple(float(v) for v in det.boxes[0])
            box, source = select_box(
                mtcnn_box, landmarks.get(k), self.iou_threshold if iou_threshold is None else iou_threshold
            )
            x1, y1, x2, y2 = (int(v) for v in box)
            if x2 - x1 >= MIN_BOX_SIDE and y2 - y1 >= MIN_BOX_SIDE:
                faces[k] = Face(
                    box, det.points[0], float(det.probs[0]), mtcnn_box, landmarks.get(k), source, len(det.boxes)
                )
        return faces
