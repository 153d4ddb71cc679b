"""Curves over the edit's timeline that a person reads: the voice's loudness and the mouth that stage 1 drew.

`lip_trajectory` measures stage 1's expressions on the BFM mean face (mouth opening and width in mm);
`loudness` is the voice's RMS level per video frame. The report, the app's lip plot and the CLI's
``lip_trajectory.json`` show them side by side.
"""

from __future__ import annotations

import numpy as np
import torch

from .timeline import FPS, SAMPLE_RATE

UPPER_LIP, LOWER_LIP = 0, 17  # MediaPipe FaceMesh: outer upper / lower lip centre
MOUTH_LEFT, MOUTH_RIGHT = 61, 291  # mouth corners
DM_TO_MM = 100.0


def lip_trajectory(face_model, expressions: np.ndarray) -> dict[str, np.ndarray]:
    """Mouth opening and width (mm) of the BFM mean face carrying each frame's expression.

    Only the four lip vertices are evaluated, so a long clip costs ``[N, 12]`` numbers, not whole meshes.

    Args:
        face_model: `joygen.face3d.bfm.FaceModel`.
        expressions: ``[N, 64]``.

    Returns:
        ``{"time_s", "mouth_open_mm", "mouth_width_mm"}``, each ``[N]``.
    """
    ids = face_model.index468[[UPPER_LIP, LOWER_LIP, MOUTH_LEFT, MOUTH_RIGHT]]
    rows = (3 * ids[:, None] + torch.arange(3, device=ids.device)).reshape(-1)  # x, y, z rows of each vertex
    exp = torch.as_tensor(np.asarray(expressions), dtype=torch.float32, device=ids.device)
    with torch.no_grad():
        points = (face_model.mean_shape[rows] + exp @ face_model.exp_base[rows].T).view(-1, 4, 3).cpu().numpy()
    opening = np.linalg.norm(points[:, 0] - points[:, 1], axis=1) * DM_TO_MM
    width = np.linalg.norm(points[:, 2] - points[:, 3], axis=1) * DM_TO_MM
    return {"time_s": np.arange(len(exp)) / FPS, "mouth_open_mm": opening, "mouth_width_mm": width}


def loudness(wav: np.ndarray, num_frames: int, fps: int = FPS) -> dict[str, np.ndarray]:
    """Loudness of a mono 16 kHz waveform per video frame: RMS in dBFS over each frame's 40 ms.

    Returns:
        ``{"time_s", "loudness_db"}``, each ``[num_frames]``; silence is -100 dB.
    """
    hop = SAMPLE_RATE // fps
    frames = np.zeros((num_frames, hop), np.float32)
    usable = min(num_frames, len(wav) // hop)
    frames[:usable] = np.asarray(wav[: usable * hop], np.float32).reshape(usable, hop)
    if usable < num_frames and len(wav) > usable * hop:
        tail = wav[usable * hop :]
        frames[usable, : len(tail)] = tail[:hop]
    rms = np.sqrt(np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / hop)
    return {"time_s": np.arange(num_frames) / fps, "loudness_db": 20 * np.log10(np.maximum(rms, 1e-5))}


def run_trajectory(face_model, wav: np.ndarray, n: int, motion, expressions, voice_active: np.ndarray) -> dict:
    """What the lip plot of a run shows, per frame: loudness and voice activity, and with stage 1 (``motion``,
    a `joygen.motion.audio_to_motion.Motion`) the mouth opening and width that stage 2 will draw from
    ``expressions``, with stage 1's own opening beside it."""
    trajectory = {"fps": FPS, **{k: np.round(v, 3).tolist() for k, v in loudness(wav, n).items()}}
    trajectory["voice_active"] = np.asarray(voice_active).tolist()
    if motion is not None:
        curves = lip_trajectory(face_model, expressions[:n])
        trajectory.update({k: np.round(v, 4).tolist() for k, v in curves.items() if k != "time_s"})
        stage1 = lip_trajectory(face_model, motion.expressions[:n])["mouth_open_mm"]
        trajectory["mouth_open_stage1_mm"] = np.round(stage1, 4).tolist()
    return trajectory
