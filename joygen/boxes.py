"""Boxes and crops: the face box every stage shares, the crop the editor sees, the context the paste-back parses.

A box is ``(x1, y1, x2, y2)`` in frame pixels, integers, ``x2``/``y2`` exclusive (the official ``int(...)`` of
the detector's float box). Crops are PIL ``crop`` semantics: black where the box leaves the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

FACE_SIZE = 256  # px: the side of the square face crop the editor works on (fixed by the weights)

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in px, integers, x2/y2 exclusive


def context_box(box: Box, expand: float = 1.2) -> Box:
    """Square context around a face box (may extend past the frame)."""
    x1, y1, x2, y2 = box
    xc, yc = (x1 + x2) // 2, (y1 + y2) // 2
    half = int(max(x2 - x1, y2 - y1) // 2 * expand)
    return xc - half, yc - half, xc + half, yc + half


def crop_padded(frame: np.ndarray, box: Box) -> np.ndarray:
    """``frame[y1:y2, x1:x2]`` with black where the box leaves the frame (PIL ``crop`` semantics)."""
    x1, y1, x2, y2 = box
    out = np.zeros((y2 - y1, x2 - x1) + frame.shape[2:], frame.dtype)
    h, w = frame.shape[:2]
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = frame[sy1:sy2, sx1:sx2]
    return out


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def face_crop(frame: np.ndarray, box: Box) -> np.ndarray:
    """The editor's input: the face box cut out (black past the frame), resized to 256x256 (Lanczos)."""
    return cv2.resize(crop_padded(frame, box), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LANCZOS4)


def context_crop(frame: np.ndarray, box: Box, expand: float) -> np.ndarray:
    """The square around the face box that the paste-back parses (`context_box`)."""
    return crop_padded(frame, context_box(box, expand))
