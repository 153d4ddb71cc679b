"""Evaluation metrics as lip-sync papers report them: LSE-C / LSE-D (SyncNet) and FID.

    from joygen.metrics import sync_score
    row = sync_score("edited.mp4", "checkpoints")  # None when SyncNet's weights are not installed
    row["lse_c"], row["lse_d"], row["offset"], row["meaning"]

`python -m joygen eval` scores many videos (see docs/evaluation.md). Modules: `mfcc` (python_speech_features
MFCC), `syncnet` (the network), `protocol` (syncnet_python's ``evaluate``), `tracks` (face tracks and crops),
`score` (a whole video), `fid` (FID Inception and the Fréchet distance), `runner` (the eval command).
Importing this package loads nothing heavy.
"""

from __future__ import annotations

_LAZY = {
    "sync_score": "joygen.metrics.api",
    "source_sync_score": "joygen.metrics.api",
    "syncnet_hint": "joygen.metrics.api",
    "load_syncnet_weights": "joygen.metrics.api",
    "load_inception_weights": "joygen.metrics.api",
    "SyncNet": "joygen.metrics.syncnet",
    "load_syncnet": "joygen.metrics.syncnet",
    "evaluate": "joygen.metrics.protocol",
    "evaluate_clip": "joygen.metrics.protocol",
    "score_video": "joygen.metrics.score",
    "frechet_distance": "joygen.metrics.fid",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'joygen.metrics' has no attribute {name!r}")
