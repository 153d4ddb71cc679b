"""The one way joygen builds its models from resolved weights: `JoyGenPipeline.from_pretrained` and
``prepare`` use these functions (``bench`` builds random real-size models and hands them to the same
`JoyGenPipeline` constructor)."""

from __future__ import annotations

from pathlib import Path

from .config import FaceConfig, PipelineConfig
from .editor.face_parsing import FaceParser
from .editor.mouth_editor import MouthEditor
from .editor.whisper import WhisperFeatures
from .errors import WeightsError
from .face3d.detection import FaceDetector
from .face3d.dwpose import DWPose
from .face3d.mouth_depth import MouthDepth
from .face3d.mtcnn import MTCNN
from .motion.audio_to_motion import AudioToMotion
from .voice_activity import VoiceActivityDetector
from .weights.locator import (
    DEPTH_ARTIFACTS,
    EDITOR_ARTIFACTS,
    LANDMARK_ARTIFACTS,
    MOTION_ARTIFACTS,
    WeightSet,
    WeightsLocator,
)

NO_DEPTH_HINT = "or run without the 3D stage: `--no-depth` (the official 'no depth' mode)"


def required_artifacts(config: PipelineConfig) -> list[str]:
    """Weights a run with ``config`` needs."""
    names = list(EDITOR_ARTIFACTS)
    if config.face.landmark_box:
        names += LANDMARK_ARTIFACTS
    if config.editor.use_depth:
        names += [*MOTION_ARTIFACTS, *DEPTH_ARTIFACTS]
    return names


def resolve_weights(locator: WeightsLocator, config: PipelineConfig, unet: str | Path | None = None) -> WeightSet:
    """Every file ``config`` needs, or one `WeightsError` listing all that are missing (and, when the 3D
    stage's files are missing but the editor's are there, the hint to run without it)."""
    names = [n for n in required_artifacts(config) if not (unet and n == "unet")]
    try:
        return locator.resolve(names)
    except WeightsError as exc:
        if config.editor.use_depth and not all(locator.find(n) for n in EDITOR_ARTIFACTS):
            raise
        raise WeightsError(f"{exc}\n{NO_DEPTH_HINT if config.editor.use_depth else ''}".rstrip()) from None


def load_face_detector(weights: WeightSet, face: FaceConfig, device: str = "cpu") -> FaceDetector:
    """MTCNN with the config's load-time search settings, and DWPose when the weights hold it."""
    mtcnn = MTCNN.from_pretrained(
        weights["mtcnn"].folder,
        min_face_size=face.min_face_size,
        thresholds=face.thresholds,
        factor=face.pyramid_factor,
    )
    dwpose = DWPose(weights["dwpose"].path("dw-ll_ucoco_384.onnx"), str(device)) if "dwpose" in weights else None
    return FaceDetector(mtcnn, dwpose, face.iou_threshold)


def load_motion(weights: WeightSet) -> AudioToMotion:
    """Stage 1: HuBERT + audio2secc."""
    return AudioToMotion.from_pretrained(weights["hubert"].folder, weights["audio2secc"].folder)


def load_mouth_depth(weights: WeightSet) -> MouthDepth:
    """Stage 2: R-Net + BFM."""
    return MouthDepth.from_pretrained(weights["face_recon"].path("epoch_20.pth"), weights["bfm"].folder)


def load_vad(weights: WeightSet | None = None) -> VoiceActivityDetector:
    """Silero VAD from ``weights``, or (None) from wherever the locator finds it (the silero-vad wheel)."""
    if weights is None or "vad" not in weights:
        weights = WeightsLocator().resolve(["vad"])
    found = weights["vad"]
    return VoiceActivityDetector(found.path("silero_vad_16k_sequence.onnx"), found.source)


def load_whisper(weights: WeightSet) -> WhisperFeatures:
    return WhisperFeatures.from_pretrained(weights["whisper"].folder)


def load_editor(weights: WeightSet, unet: str | Path | None = None) -> MouthEditor:
    """Stage 3's VAE + UNet (``unet``: another UNet folder, e.g. a training checkpoint)."""
    return MouthEditor.from_pretrained(unet or weights["unet"].folder, weights["vae"].folder)


def load_face_parser(weights: WeightSet) -> FaceParser:
    return FaceParser.from_pretrained(weights["face_parsing"].path("79999_iter.pth"))
