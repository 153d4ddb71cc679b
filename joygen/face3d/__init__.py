"""Stage 2 of JoyGen, 3D: each frame's face in 3D, with stage 1's expression, as a depth map of the mouth.

Face boxes and 5 points (`mtcnn`, the DWPose landmark box: `dwpose`, `detection`) → 5-point alignment and
Deep3DFaceRecon's R-Net, 257 coefficients (`reconstruction`) → the expression replaced by stage 1's → the
BFM mesh (`bfm`) → a z-buffer render (`render`, in place of nvdiffrast) → the 8-bit depth of the outer lips,
256×256, the editor's depth condition (`mouth_depth`).
"""
