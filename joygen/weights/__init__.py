"""Every model file joygen loads: where it comes from, checked (`locator`: the one table, pinned Hub
revisions, local folders), the official release converted to joygen's layout (`importer`), and a tiny
random-weight set of the same layout for tests (`tiny`).

The locator's names are available here: ``from joygen.weights import WeightsLocator, ARTIFACTS``.
"""

from .locator import (
    ARTIFACTS,
    DEPTH_ARTIFACTS,
    EDITOR_ARTIFACTS,
    LANDMARK_ARTIFACTS,
    MARKER,
    METRIC_ARTIFACTS,
    MOTION_ARTIFACTS,
    PROJECT_ROOT,
    Artifact,
    WeightSet,
    WeightsLocator,
    default_weights_dir,
    file_sha256,
)

__all__ = [
    "ARTIFACTS",
    "DEPTH_ARTIFACTS",
    "EDITOR_ARTIFACTS",
    "LANDMARK_ARTIFACTS",
    "MARKER",
    "METRIC_ARTIFACTS",
    "MOTION_ARTIFACTS",
    "PROJECT_ROOT",
    "Artifact",
    "WeightSet",
    "WeightsLocator",
    "default_weights_dir",
    "file_sha256",
]
