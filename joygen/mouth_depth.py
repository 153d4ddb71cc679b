"""Stage 2: the mouth depth map the editor is conditioned on.

Per frame with a face: 5-point alignment to a 224 crop -> R-Net coefficients -> the expression replaced by
the audio-driven one (stage 1) while identity, pose, lighting and translation stay the frame's -> BFM mesh ->
depth render -> 8-bit depth pasted back into the frame and cut to the face box -> outer-lip polygon ->
256x256, upper half black. Everything runs in batches of frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .blending import crop_padded
from .face_model import FaceModel
from .faces import Face
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

    def coefficients(self, frames: list[np.ndarray], faces: list[Face]) -> tuple[torch.Tensor, list[Alignment]]:
        """Align every frame on its MTCNN points and regress ``[B, 257]`` coefficients."""
        crops, alignments = zip(
            *(align_face(f, face.points, self.face_model.template5) for f, face in zip(frames, faces))
        )
        param = next(self.recon_net.parameters())
        coeffs = self.recon_net(crops_to_tensor(np.stack(crops), param.device, param.dtype))
        return coeffs.float(), list(alignments)

    @torch.no_grad()
    def forward(
        self, frames: list[np.ndarray], faces: list[Face], expressions: np.ndarray | None = None
    ) -> list[MouthDepthResult]:
        """Depth maps for frames that have a face.

        Args:
            frames: ``(H, W, 3)`` uint8 RGB frames.
            faces: the face of each frame (none may be None).
            expressions: ``[B, 64]`` stage-1 expressions; None keeps each frame's own (training data).
        """
        coeffs, alignments = self.coefficients(frames, faces)
        edited = coeffs.clone()
        if expressions is not None:
            edited[:, COEFF_SLICES["exp"]] = torch.as_tensor(np.asarray(expressions), dtype=edited.dtype).to(
                edited.device
            )
        vertices = self.face_model.camera_vertices(edited)
        depth224 = normalize_depth(rasterize(vertices, self.face_model.triangles).depth)
        lm224 = self.face_model.landmarks468(vertices).cpu().numpy()
        lm68 = self.face_model.landmarks68(vertices).cpu().numpy()
        results = []
        for k, (face, al) in enumerate(zip(faces, alignments)):
            x1, y1, x2, y2 = face.crop_box
            frame_depth = depth_in_frame(depth224[k], al)
            crop = crop_padded(frame_depth, (x1, y1, x2, y2))
            lm = landmarks_in_frame(lm224[k], al) - np.asarray(face.box[:2], np.float64)
            results.append(
                MouthDepthResult(
                    mouth_depth_image(crop, lm), crop, lm, landmarks_in_frame(lm68[k], al), coeffs[k].cpu().numpy(), al
                )
            )
        return results
