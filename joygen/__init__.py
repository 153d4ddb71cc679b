"""joygen: audio-driven, depth-aware talking-face video editing (JoyGen, arXiv 2501.01798).

    from joygen import JoyGenPipeline
    pipe = JoyGenPipeline.from_pretrained("checkpoints", device="cuda")
    result = pipe("talk.mp4", "new_voice.wav", "edited.mp4")

Importing this package loads nothing heavy; the names below are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "JoyGenPipeline": "joygen.pipeline",
    "JoyGenOutput": "joygen.pipeline",
    "PipelineConfig": "joygen.config",
    "JoyGenError": "joygen.errors",
    "InputError": "joygen.errors",
    "NoFaceError": "joygen.errors",
    "WeightsError": "joygen.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'joygen' has no attribute {name!r}")
