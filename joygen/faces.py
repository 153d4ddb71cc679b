"""Face boxes for every frame: which pixels the editor re-draws.

`FaceDetector` runs MTCNN on batches of frames and keeps the largest face of each, as the official stage 2
does (``boxes[0]``). The box is the official ``box_select``; the crop the editor sees is that box cut to
integers (`Face.crop_box`). A frame where no face is found gets ``None`` and is passed through unedited.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blending import Box
from .mtcnn import MTCNN

MIN_BOX_SIDE = 8  # px; smaller boxes are treated as no face


@dataclass(frozen=True)
class Face:
    """One face in one frame."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in px (the official box_select)
    points: np.ndarray  # (5, 2) MTCNN landmarks x, y: left eye, right eye, nose, mouth corners
    score: float  # MTCNN face probability

    @property
    def crop_box(self) -> Box:
        """The box as integers (truncated, like the official ``int(...)``): the crop and paste-back region."""
        return tuple(int(v) for v in self.box)

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 3) for v in self.box],
            "score": round(self.score, 5),
            "points": np.round(self.points, 3).tolist(),
        }


class FaceDetector:
    """Largest face per frame, batched.

    Args:
        mtcnn: the detector.
    """

    def __init__(self, mtcnn: MTCNN):
        self.mtcnn = mtcnn

    def __call__(self, frames: list[np.ndarray]) -> list[Face | None]:
        """``(H, W, 3)`` uint8 RGB frames of one size -> the largest face of each, or None."""
        if not frames:
            return []
        faces: list[Face | None] = []
        for det in self.mtcnn.detect(np.stack(frames)):
            face = None
            if len(det.boxes):
                box = tuple(float(v) for v in det.boxes[0])
                x1, y1, x2, y2 = (int(v) for v in box)
                if x2 - x1 >= MIN_BOX_SIDE and y2 - y1 >= MIN_BOX_SIDE:
                    face = Face(box, det.points[0], float(det.probs[0]))
            faces.append(face)
        return faces
