"""The Basel Face Model (front part) as Deep3DFaceRecon uses it: shape, pose, camera and projection.

World space: x right, y up, z towards the viewer, decimetres. A face is

    shape  = mean + idBase @ id + exBase @ exp          (mean shape re-centred on its own vertex mean)
    posed  = shape @ R^T + trans,  R = Rz Ry Rx          (angles in radians, row vectors)
    camera = (x, y, 10 - z)                              (camera 10 dm in front, looking down -z)
    pixel  = 1015 * (x, y) / z_cam + 112                 (v up; image row = 223 - v)

in a 224x224 crop (`joygen.reconstruction`). The 468 MediaPipe FaceMesh landmarks are vertices of the
mesh picked by ``index_mp468_from_mesh35709.npy``; some versions of that file mark unmatched points with
-999: those get vertex 0 and ``valid468`` False (the official code silently wraps them around). None of the
20 outer-lip points the depth mask uses may be unmatched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import WeightsError
from .reconstruction import CROP_SIZE, five_point_template, split_coeffs

FOCAL = 1015.0  # px, at the 224 crop
CENTER = 112.0  # px, principal point of the 224 crop
CAMERA_DISTANCE = 10.0  # dm
# MediaPipe FaceMesh outer-lip contour: upper lip left -> right, lower lip right -> left (one polygon).
OUTER_LIP_468 = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
# The outer contour's upper-lip points between the corners, each with the lower-lip point facing it.
LIP_PAIRS_468 = ((185, 146), (40, 91), (39, 181), (37, 84), (0, 17), (267, 314), (269, 405), (270, 321), (409, 375))
BFM_FILES = ("BFM_model_front.mat", "similarity_Lm3D_all.mat", "index_mp468_from_mesh35709.npy")


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """``[B, 3]`` radians (x, y, z) -> ``[B, 3, 3]`` = (Rz Ry Rx)^T, to right-multiply row vectors."""
    x, y, z = angles[:, :1], angles[:, 1:2], angles[:, 2:]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rx = torch.cat([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], 1).view(-1, 3, 3)
    ry = torch.cat([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1).view(-1, 3, 3)
    rz = torch.cat([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], 1).view(-1, 3, 3)
    return (rz @ ry @ rx).transpose(1, 2)


class FaceModel(nn.Module):
    """Geometry of the BFM front face (no texture: JoyGen needs only depth and landmarks).

    Buffers: ``mean_shape [3N]`` (re-centred), ``id_base [3N, 80]``, ``exp_base [3N, 64]``,
    ``triangles [F, 3]`` (0-based), ``keypoints [68]``, ``index468 [468]``, ``valid468 [468]``.
    """

    def __init__(self, mean_shape, id_base, exp_base, triangles, keypoints, index468, lm68_template):
        super().__init__()
        mean = np.asarray(mean_shape, np.float32).reshape(-1, 3)
        mean = mean - mean.mean(axis=0, keepdims=True)
        n = len(mean)
        index468 = np.asarray(index468, np.int64).reshape(-1)
        valid = (index468 >= 0) & (index468 < n)
        if not valid[list(OUTER_LIP_468)].all():
            raise WeightsError(
                "index_mp468_from_mesh35709.npy leaves outer-lip points unmatched; cannot mask the mouth"
            )
        self.register_buffer("mean_shape", torch.from_numpy(mean.reshape(-1)))
        self.register_buffer("id_base", torch.from_numpy(np.asarray(id_base, np.float32)))
        self.register_buffer("exp_base", torch.from_numpy(np.asarray(exp_base, np.float32)))
        self.register_buffer("triangles", torch.from_numpy(np.asarray(triangles, np.int64)))
        self.register_buffer("keypoints", torch.from_numpy(np.asarray(keypoints, np.int64).reshape(-1)))
        self.register_buffer("index468", torch.from_numpy(np.where(valid, index468, 0)))
        self.register_buffer("valid468", torch.from_numpy(valid))
        self.template5 = five_point_template(lm68_template)
        persp = np.array([[FOCAL, 0, CENTER], [0, FOCAL, CENTER], [0, 0, 1]], np.float32).T
        self.register_buffer("perspective", torch.from_numpy(persp))

    @classmethod
    def from_folder(cls, folder: str | Path) -> FaceModel:
        """Load ``BFM_model_front.mat``, ``similarity_Lm3D_all.mat`` and ``index_mp468_from_mesh35709.npy``."""
        from scipy.io import loadmat

        folder = Path(folder)
        try:
            model = loadmat(folder / "BFM_model_front.mat")
            lm68 = loadmat(folder / "similarity_Lm3D_all.mat")["lm"]
            index468 = np.load(folder / "index_mp468_from_mesh35709.npy")
            return cls(
                model["meanshape"],
                model["idBase"],
                model["exBase"],
                model["tri"].astype(np.int64) - 1,  # the .mat files are 1-based
                np.squeeze(model["keypoints"]).astype(np.int64) - 1,
                index468,
                lm68,
            )
        except (OSError, KeyError, ValueError) as exc:
            raise WeightsError(f"Basel Face Model files in '{folder}' cannot be read: {exc}") from exc

    @property
    def num_vertices(self) -> int:
        return self.mean_shape.numel() // 3

    def lip_gap_basis(self) -> torch.Tensor:
        """``[3 * 9, 64]``: how each expression coefficient moves every upper outer-lip point (x, y, z) relative to
        the lower-lip point facing it (`LIP_PAIRS_468`). An expression in its null space has the lips of the
        neutral face: the mouth as closed as this person's neutral face (see `joygen.stability`)."""
        upper = self.index468[[u for u, _ in LIP_PAIRS_468]]
        lower = self.index468[[lo for _, lo in LIP_PAIRS_468]]
        xyz = torch.arange(3, device=upper.device)
        rows = lambda ids: (3 * ids[:, None] + xyz).reshape(-1)  # noqa: E731 - the x, y, z rows of each vertex
        return self.exp_base[rows(upper)] - self.exp_base[rows(lower)]

    def shape(self, id_coeff: torch.Tensor, exp_coeff: torch.Tensor) -> torch.Tensor:
        """World-space vertices ``[B, N, 3]`` of identity ``[B, 80]`` and expression ``[B, 64]``."""
        id_part = torch.einsum("ij,aj->ai", self.id_base, id_coeff)
        exp_part = torch.einsum("ij,aj->ai", self.exp_base, exp_coeff)
        return (id_part + exp_part + self.mean_shape[None]).view(len(id_coeff), -1, 3)

    def camera_vertices(self, coeffs: torch.Tensor) -> torch.Tensor:
        """``[B, 257]`` coefficients -> camera-space vertices ``[B, N, 3]`` (z = distance from the camera)."""
        c = split_coeffs(coeffs)
        posed = self.shape(c["id"], c["exp"]) @ rotation_matrices(c["angle"]) + c["trans"][:, None]
        return torch.cat([posed[..., :2], CAMERA_DISTANCE - posed[..., 2:]], dim=-1)

    def project(self, vertices: torch.Tensor) -> torch.Tensor:
        """Camera-space vertices -> crop pixels ``[..., 2]`` (u right, v UP)."""
        p = vertices @ self.perspective
        return p[..., :2] / p[..., 2:]

    def landmarks468(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 468 FaceMesh landmarks in 224-crop image coordinates (x right, y down): ``[B, 468, 2]``."""
        uv = self.project(vertices[:, self.index468])
        return torch.stack([uv[..., 0], CROP_SIZE - 1 - uv[..., 1]], dim=-1)

    def landmarks68(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 68 dlib-order landmarks in 224-crop image coordinates (x right, y down): ``[B, 68, 2]``."""
        uv = self.project(vertices[:, self.keypoints])
        return torch.stack([uv[..., 0], CROP_SIZE - 1 - uv[..., 1]], dim=-1)
