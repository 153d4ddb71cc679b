"""Stage 2: the mouth depth map the editor is conditioned on.

Per frame with a face: 5-point alignment to a 224 crop -> R-Net coefficients -> the expression replaced by
the audio-driven one (stage 1) while identity, pose, lighting and translation stay the frame's -> BFM mesh ->
depth render -> 8-bit depth pasted back into the frame and cut to the face box -> outer-lip polygon ->
256x256, upper half black. Everything runs in batches of frames.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..boxes import crop_padded
from .bfm import FaceModel
from .detection import Face
from .reconstruction import COEFF_SLICES, Alignment, ReconNet, align_face, crops_to_tensor, load_recon_net
from .render import depth_in_frame, landmarks_in_frame, mouth_depth_image, normalize_depth, rasterize


@dataclass
class MouthDepthResult:
    """Stage-2 output for one frame."""

    depth256: np.ndarray  # (256, 256, 3) uint8: what the editor's VAE encodes
    depth_crop: np.ndarray  # (h, w) uint8 depth of the whole face, cut to the face box
    landmarks468: np.ndarray  # (468, 2) float64, relative to the face box's top-left corner
    landmarks68: np.ndarray  # (68, 2) float64 dlib-order landmarks of the edited mesh, frame pixels
    coeffs: np.ndarray  # (257,) float32 the frame's R-Net coefficients (its own expression)
    alignment: Alignment


class MouthDepth(nn.Module):
    """R-Net + face model + renderer.

    Args:
        recon_net: Deep3DFaceRecon R-Net.
        face_model: BFM geometry.
    """

    def __init__(self, recon_net: ReconNet, face_model: FaceModel):
        super().__init__()
        self.recon_net = recon_net
        self.face_model = face_model

    @classmethod
    def from_pretrained(cls, recon_path: str | Path, bfm_folder: str | Path) -> MouthDepth:
        return cls(load_recon_net(recon_path), FaceModel.from_folder(bfm_folder))

    @property
    def device(self) -> torch.device:
        return next(self.recon_net.parameters()).device

    def coefficients(
        self, frames: list[np.ndarray], faces: list[Face], pool: Executor | None = None
    ) -> tuple[np.ndarray, list[Alignment]]:
        """Align every frame on its MTCNN points and regress ``[B, 257]`` coefficients (the voice-independent part)."""
        jobs = [(f, face.points, self.face_model.template5) for f, face in zip(frames, faces)]
        crops, alignments = zip(*(pool.map(_align, jobs) if pool else map(_align, jobs)))
        param = next(self.recon_net.parameters())
        with torch.no_grad():
            coeffs = self.recon_net(crops_to_tensor(np.stack(crops), param.device, param.dtype))
        return coeffs.float().cpu().numpy(), list(alignments)

    @torch.no_grad()
    def render(
        self,
        coeffs: np.ndarray,
        alignments: list[Alignment],
        faces: list[Face],
        expressions: np.ndarray | None = None,
        pool: Executor | None = None,
    ) -> list[MouthDepthResult]:
        """Depth maps from coefficients, with the expression replaced (the voice-dependent part).

        Args:
            coeffs: ``[B, 257]`` the frames' own coefficients.
            alignments, faces: of the same frames.
            expressions: ``[B, 64]`` stage-1 expressions; None keeps each frame's own (training data).
        """
        device = self.face_model.mean_shape.device
        edited = torch.as_tensor(np.asarray(coeffs, np.float32), device=device).clone()
        if expressions is not None:
            edited[:, COEFF_SLICES["exp"]] = torch.as_tensor(np.asarray(expressions), dtype=edited.dtype, device=device)
        vertices = self.face_model.camera_vertices(edited)
        depth224 = normalize_depth(rasterize(vertices, self.face_model.triangles).depth)
        lm224 = self.face_model.landmarks468(vertices).cpu().numpy()
        lm68 = self.face_model.landmarks68(vertices).cpu().numpy()
        jobs = [
            (depth224[k], lm224[k], lm68[k], coeffs[k], al, face) for k, (al, face) in enumerate(zip(alignments, faces))
        ]
        return list(pool.map(_finish, jobs) if pool else map(_finish, jobs))

    def forward(
        self, frames: list[np.ndarray], faces: list[Face], expressions: np.ndarray | None = None
    ) -> list[MouthDepthResult]:
        """Depth maps for frames that have a face (``faces`` may not hold None); see `render`."""
        coeffs, alignments = self.coefficients(frames, faces)
        return self.render(coeffs, alignments, faces, expressions)


def _align(job):
    frame, points, template = job
    return align_face(frame, points, template)


def _finish(job) -> MouthDepthResult:
    """Per frame: the 224 depth into the frame, cut to the face box, lip mask, 256 image."""
    depth224, lm224, lm68, coeffs, al, face = job
    crop = crop_padded(depth_in_frame(depth224, al), face.crop_box)
    lm = landmarks_in_frame(lm224, al) - np.asarray(face.box[:2], np.float64)
    return MouthDepthResult(mouth_depth_image(crop, lm), crop, lm, landmarks_in_frame(lm68, al), np.asarray(coeffs), al)
