"""Mouth depth maps: a z-buffer rasteriser in plain PyTorch and the official post-processing.

The official renderer (nvdiffrast, CUDA only) draws the face mesh into the 224 crop and keeps, per pixel,
the camera distance of the nearest surface. `rasterize` does the same, vectorised over frames and
triangles on any device:

* a pixel (row i, column j) is covered when its centre (j + 0.5, i + 0.5) lies inside a triangle; the
  three edge functions are computed in float64 and an edge counts as inside; no culling, no antialiasing,
  zero-area triangles are skipped;
* vertex positions come from clip space as nvdiffrast's do: ``clip = (9.0625 x, -9.0625 y, ., z_cam)``,
  pixel = (clip / w + 1) * 112, so rows run top-down like the crop;
* depth is perspective-correct, ``1 / sum(b_k / z_k)`` with screen-space barycentrics b; the nearest
  fragment wins and on an exact tie the lower triangle index.

Then, as the official stage 2 and 3 do: per-frame normalisation over the face (near = 255, far = 0,
background 0, truncated to uint8), the 224 image pasted back into the frame and cut to the face box, the
outer-lip polygon of the 468 landmarks as a mask, a 256x256 Lanczos resize and the upper half zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from ..boxes import FACE_SIZE
from .bfm import CENTER, FOCAL, OUTER_LIP_468
from .reconstruction import CROP_SIZE, Alignment

NDC_SCALE = np.float32(FOCAL / CENTER)  # 9.0625: the official projection matrix's n / x, in float32
DEPTH_EPS = 1e-8  # the official normalisation's guard


@dataclass
class Raster:
    depth: torch.Tensor  # [B, H, W] float32 camera distance of the nearest surface, 0 = background
    triangle: torch.Tensor  # [B, H, W] int64 index of that surface's triangle, -1 = background

    @property
    def mask(self) -> torch.Tensor:
        return self.triangle >= 0


def screen_coordinates(vertices: torch.Tensor, size: int = CROP_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-space vertices ``[B, N, 3]`` -> float64 pixel x, y (``[B, N]``), top-down rows."""
    w = vertices[..., 2].double()
    half = size / 2
    sx = ((vertices[..., 0] * float(NDC_SCALE)).double() / w + 1) * half
    sy = ((-vertices[..., 1] * float(NDC_SCALE)).double() / w + 1) * half
    return sx, sy


def rasterize(vertices: torch.Tensor, triangles: torch.Tensor, size: int = CROP_SIZE) -> Raster:
    """Z-buffer render of camera-space meshes.

    Args:
        vertices: ``[B, N, 3]`` camera-space vertices (z > 0 = in front of the camera).
        triangles: ``[F, 3]`` int64 vertex indices, shared by the batch.
        size: output side in px (the official 224).

    Returns:
        `Raster` with ``[B, size, size]`` depth and triangle maps, on ``vertices.device``.
    """
    b, f = vertices.shape[0], triangles.shape[0]
    dev = vertices.device
    sx, sy = screen_coordinates(vertices, size)
    z = vertices[..., 2].double()
    x, y, zt = sx[:, triangles], sy[:, triangles], z[:, triangles]  # [B, F, 3]
    # Range of pixel centres inside each triangle's bounding box.
    j0 = torch.ceil(x.amin(-1) - 0.5).clamp(min=0)
    j1 = torch.floor(x.amax(-1) - 0.5).clamp(max=size - 1)
    i0 = torch.ceil(y.amin(-1) - 0.5).clamp(min=0)
    i1 = torch.floor(y.amax(-1) - 0.5).clamp(max=size - 1)
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])
    nx = (j1 - j0 + 1).clamp(min=0).long().flatten()
    ny = (i1 - i0 + 1).clamp(min=0).long().flatten()
    count = nx * ny * (area.flatten() != 0) * (zt.amin(-1).flatten() > 0)
    # One row per (triangle, candidate pixel): triangles of every size in one flat batch.
    live = count.nonzero().squeeze(1)
    per = count[live]
    tri = torch.repeat_interleave(live, per)  # index into B * F
    first = torch.repeat_interleave(torch.cumsum(per, 0) - per, per)
    k = torch.arange(tri.numel(), device=dev) - first
    cols = nx[tri]
    px = j0.flatten()[tri] + k % cols + 0.5
    py = i0.flatten()[tri] + torch.div(k, cols, rounding_mode="floor") + 0.5
    xs, ys, zs = x.reshape(-1, 3)[tri], y.reshape(-1, 3)[tri], zt.reshape(-1, 3)[tri]
    a = area.flatten()[tri]
    sign = torch.sign(a)
    w0 = ((xs[:, 1] - px) * (ys[:, 2] - py) - (xs[:, 2] - px) * (ys[:, 1] - py)) * sign
    w1 = ((xs[:, 2] - px) * (ys[:, 0] - py) - (xs[:, 0] - px) * (ys[:, 2] - py)) * sign
    w2 = ((xs[:, 0] - px) * (ys[:, 1] - py) - (xs[:, 1] - px) * (ys[:, 0] - py)) * sign
    inside = ((w0 >= 0) & (w1 >= 0) & (w2 >= 0)).nonzero().squeeze(1)
    tri, a = tri[inside], a[inside].abs()
    zs = zs[inside]
    depth = a / (w0[inside] / zs[:, 0] + w1[inside] / zs[:, 1] + w2[inside] / zs[:, 2])
    frame = torch.div(tri, f, rounding_mode="floor")
    pixel = frame * size * size + (py[inside] - 0.5).long() * size + (px[inside] - 0.5).long()
    # Z-test: nearest depth per pixel, then the lowest triangle among the nearest.
    zbuf = torch.full((b * size * size,), torch.inf, dtype=torch.float64, device=dev)
    zbuf.scatter_reduce_(0, pixel, depth, reduce="amin")
    nearest = depth == zbuf[pixel]
    tbuf = torch.full((b * size * size,), f, dtype=torch.long, device=dev)
    tbuf.scatter_reduce_(0, pixel[nearest], tri[nearest] - frame[nearest] * f, reduce="amin")
    covered = tbuf < f
    return Raster(
        torch.where(covered, zbuf, 0).float().view(b, size, size),
        torch.where(covered, tbuf, -1).view(b, size, size),
    )


def normalize_depth(depth: torch.Tensor) -> np.ndarray:
    """Official 8-bit depth: per frame over the face, ``255 - (d - dmin) / (dmax - dmin + 1e-8) * 255``.

    Args:
        depth: ``[B, H, W]`` float32, 0 = background.

    Returns:
        ``[B, H, W]`` uint8: nearest point 255, farthest face pixel 0, background 0 (values truncated).
    """
    d = depth.float()
    face = d > 0
    dmin = torch.where(face, d, torch.inf).amin((1, 2), keepdim=True)
    dmax = torch.where(face, d, -torch.inf).amax((1, 2), keepdim=True)
    scaled = 255 - (d - dmin) / (dmax - dmin + DEPTH_EPS) * 255
    return torch.where(face, scaled, 0).clamp(0, 255).to(torch.uint8).cpu().numpy()


def depth_in_frame(depth224: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Paste a 224 depth image back into its frame: ``(H, W)`` uint8, as the official PIL steps do."""
    w_s, h_s = alignment.scaled_size
    left, up = alignment.left, alignment.up
    canvas = Image.fromarray(depth224).crop((-left, -up, w_s - left, h_s - up))  # = paste at (left, up)
    return np.asarray(canvas.resize((alignment.width, alignment.height), Image.BICUBIC))


def landmarks_in_frame(lm224: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Crop-pixel landmarks ``[..., 2]`` -> frame pixels (float64)."""
    return (np.asarray(lm224, np.float64) + [alignment.left, alignment.up]) / alignment.scale


def lip_mask(shape: tuple[int, int], lm468_crop: np.ndarray) -> np.ndarray:
    """``(h, w)`` uint8 mask, 1 inside the outer-lip polygon of the 468 landmarks (crop coordinates)."""
    polygon = np.asarray(lm468_crop, np.float64)[list(OUTER_LIP_468)].astype(np.int32)  # truncation, as official
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [polygon], 1)
    return mask


def mouth_depth_image(depth_crop: np.ndarray, lm468_crop: np.ndarray) -> np.ndarray:
    """What the editor encodes: the depth inside the lips, 256x256, upper half black, 3 equal channels.

    Args:
        depth_crop: ``(h, w)`` uint8 depth cut to the face box.
        lm468_crop: ``(468, 2)`` landmarks relative to the face box's top-left corner.

    Returns:
        ``(256, 256, 3)`` uint8.
    """
    masked = depth_crop * lip_mask(depth_crop.shape, lm468_crop)
    out = cv2.resize(masked, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LANCZOS4)
    out[: FACE_SIZE // 2] = 0
    return np.repeat(out[..., None], 3, axis=2)
