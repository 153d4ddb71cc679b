"""Paste-back: put the generated face into the frame, only where the lower face is.

This follows the official (MuseTalk v1) rule step by step, so the result is byte-identical to it:

1. A square context around the face box: centre of the box, half side ``int(max(w, h) // 2 * 1.2)``
   (black where it leaves the frame).
2. BiSeNet face classes (1-13) of the context, parsed at 512 px and resized back (PIL bicubic).
3. That mask kept only inside the face box and below the context's middle row.
4. A Gaussian feather, kernel ``int(0.1 * side // 2 * 2) + 1`` (odd, ~10 % of the context).
5. The generated face, resized to the box (bilinear), composited with that soft mask using PIL's
   integer blend ``(a * (255 - m) + b * m + 128) / 255``.

Every pixel where the feathered mask is 0 keeps the source frame's value exactly.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..boxes import Box, context_box, crop_padded


def feather_kernel(side: int, feather: float = 0.1) -> int:
    """Odd Gaussian kernel size for a context of ``side`` px."""
    return int(feather * side // 2 * 2) + 1


def blend_mask(
    parsing512: np.ndarray, box: Box, ctx: Box, upper_boundary_ratio: float = 0.5, feather: float = 0.1
) -> np.ndarray:
    """Soft paste mask in context coordinates.

    Args:
        parsing512: ``(512, 512)`` uint8, 255 on face classes of the context crop.
        box: face box in frame coordinates.
        ctx: context box (`context_box`).

    Returns:
        ``(S, S)`` uint8 mask, S = context side.
    """
    side = ctx[2] - ctx[0]
    parsing = np.asarray(Image.fromarray(parsing512).resize((side, side), Image.BICUBIC))
    mask = np.zeros_like(parsing)
    bx1, by1, bx2, by2 = (box[0] - ctx[0], box[1] - ctx[1], box[2] - ctx[0], box[3] - ctx[1])
    bx1, by1, bx2, by2 = max(bx1, 0), max(by1, 0), min(bx2, side), min(by2, side)
    mask[by1:by2, bx1:bx2] = parsing[by1:by2, bx1:bx2]
    mask[: int(side * upper_boundary_ratio)] = 0
    k = feather_kernel(side, feather)
    return cv2.GaussianBlur(mask, (k, k), 0)


def composite(base: np.ndarray, top: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PIL's masked paste: ``(base * (255 - m) + top * m) / 255`` with its integer rounding."""
    m = mask.astype(np.uint32)[..., None]
    tmp = base.astype(np.uint32) * (255 - m) + top.astype(np.uint32) * m + 128
    return (((tmp >> 8) + tmp) >> 8).astype(np.uint8)


def paste_back(
    frame: np.ndarray,
    face: np.ndarray,
    box: Box,
    parsing512: np.ndarray,
    *,
    expand: float = 1.2,
    upper_boundary_ratio: float = 0.5,
    feather: float = 0.1,
) -> np.ndarray:
    """Blend a generated face into a frame.

    Args:
        frame: ``(H, W, 3)`` uint8 source frame (not modified).
        face: ``(256, 256, 3)`` uint8 generated face, same channel order as ``frame``.
        box: integer face box the face was cropped from.
        parsing512: face mask of ``crop_padded(frame, context_box(box, expand))`` (`FaceParser` output).

    Returns:
        A new ``(H, W, 3)`` uint8 frame.
    """
    ctx = context_box(box, expand)
    side = ctx[2] - ctx[0]
    mask = blend_mask(parsing512, box, ctx, upper_boundary_ratio, feather)
    context = crop_padded(frame, ctx)
    # Paste the resized face into the context (clipped to it), as PIL's paste does.
    resized = cv2.resize(face, (box[2] - box[0], box[3] - box[1]), interpolation=cv2.INTER_LINEAR)
    bx1, by1 = box[0] - ctx[0], box[1] - ctx[1]
    cx1, cy1 = max(bx1, 0), max(by1, 0)
    cx2, cy2 = min(bx1 + resized.shape[1], side), min(by1 + resized.shape[0], side)
    context[cy1:cy2, cx1:cx2] = resized[cy1 - by1 : cy2 - by1, cx1 - bx1 : cx2 - bx1]
    # Composite the context back onto the frame where both overlap.
    out = frame.copy()
    h, w = frame.shape[:2]
    fx1, fy1, fx2, fy2 = max(ctx[0], 0), max(ctx[1], 0), min(ctx[2], w), min(ctx[3], h)
    if fx2 > fx1 and fy2 > fy1:
        sl = np.s_[fy1 - ctx[1] : fy2 - ctx[1], fx1 - ctx[0] : fx2 - ctx[0]]
        out[fy1:fy2, fx1:fx2] = composite(frame[fy1:fy2, fx1:fx2], context[sl], mask[sl])
    return out


class EditFader:
    """Fades edits in and out next to frames that stay unedited (no face), so the mouth does not jump.

    Frames go in in order as ``(source, edited)`` (``edited`` None: pass the source through untouched) and
    come out in order, ``span`` frames later, as ``(source, output)`` pairs. An edited frame ``d`` frames from the nearest unedited one
    (``d <= span``) is blended ``d / (span + 1)`` of the way from the source to the edit; frames without a
    face come out byte-identical to their source.
    """

    def __init__(self, span: int = 3):
        self.span = span
        self.pending: list[list] = []  # [source, edited, distance to the nearest unedited frame]
        self.since_gap = np.inf

    def push(self, source: np.ndarray, edited: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        if edited is None:
            for back, item in enumerate(reversed(self.pending), start=1):
                item[2] = min(item[2], back)
            self.since_gap = 0
            self.pending.append([source, None, 0])
        else:
            self.since_gap += 1
            self.pending.append([source, edited, self.since_gap])
        ready = self.pending[: max(0, len(self.pending) - self.span)]
        self.pending = self.pending[len(ready) :]
        return [(item[0], self._mix(*item)) for item in ready]

    def flush(self) -> list[tuple[np.ndarray, np.ndarray]]:
        ready, self.pending = self.pending, []
        return [(item[0], self._mix(*item)) for item in ready]

    def _mix(self, source, edited, distance) -> np.ndarray:
        if edited is None:
            return source
        if distance > self.span:
            return edited
        w = distance / (self.span + 1)
        return np.round(source.astype(np.float32) * (1 - w) + edited.astype(np.float32) * w).astype(np.uint8)
