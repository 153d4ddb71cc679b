"""Run settings: frozen dataclasses, one per concern, composed into `PipelineConfig`.

Defaults are the paper's / the official code's settings. Architecture sizes are not here: they travel with
the weights (config.json, config.yaml). The CLI and the app build a config with `PipelineConfig.with_options`,
whose flat option names (`seed`, `use_depth`, `crf`, ...) are the same everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VideoConfig:
    fps: int = 25  # frames per second; JoyGen's three stages all work at 25 fps
    crf: int = 18  # H.264 constant rate factor of the output (0 lossless .. 51 worst); 18 as the official
    preset: str = "medium"  # x264 speed/size preset of the output encode
    audio_bitrate: str = "192k"  # AAC bitrate of the output
    max_seconds: float | None = None  # refuse voice tracks longer than this (None: no limit; the app sets one)
    lossless: bool = False  # lossless RGB H.264 (libx264rgb, crf 0): exact frames, large, not for browsers
    cache: bool = True  # reuse the per-video work (faces, 3D fits, latents, masks) across voice tracks
    cache_dir: str | None = None  # where (None: $JOYGEN_CACHE_DIR or ~/.cache/joygen)


@dataclass(frozen=True)
class FaceConfig:
    min_face_size: int = 50  # px; smallest face MTCNN looks for (official stage 2 uses 50)
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-Net face probability thresholds
    pyramid_factor: float = 0.709  # scale step of MTCNN's image pyramid
    landmark_box: bool = True  # official DWPose landmark box for the editor crop (False: MTCNN box only)
    iou_threshold: float = 0.5  # landmark box used only if it overlaps the detector box this much (official)
    crossfade_frames: int = 3  # frames over which edits fade in/out next to frames without a face


@dataclass(frozen=True)
class MotionConfig:
    seed: int = 0  # seed of the audio-to-expression sampling (official pipeline: 0)
    temperature: float = 0.2  # scale of the prior noise of the audio2secc VAE (official: 0.2)
    mouth_amp: float = 0.45  # mouth amplitude fed to audio2secc (official: 0.45)
    hubert_input: str = "channel0"  # "channel0": the official HuBERT input; "mix": the mean of the channels


@dataclass(frozen=True)
class EditorConfig:
    use_depth: bool = True  # condition the editor on the mouth depth map (False: the "no depth" mode)
    batch_size: int = 8  # frames per UNet/VAE batch (official: 8)
    face_size: int = 256  # px; side of the square face crop the editor works on (fixed by the weights)


@dataclass(frozen=True)
class BlendConfig:
    expand: float = 1.2  # context square side = expand x the longer side of the face box
    upper_boundary_ratio: float = 0.5  # context rows above this fraction keep the source pixels
    feather: float = 0.1  # Gaussian feather kernel, as a fraction of the context width


@dataclass(frozen=True)
class PipelineConfig:
    video: VideoConfig = field(default_factory=VideoConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    editor: EditorConfig = field(default_factory=EditorConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)

    def with_options(self, **options: Any) -> PipelineConfig:
        """Return a copy with flat options replaced, e.g. ``with_options(seed=1, use_depth=False)``.

        Option names are the field names of the sections; they are unique across sections. ``None`` values
        are ignored so that unset CLI flags keep the defaults.

        Raises:
            TypeError: for a name no section has.
        """
        sections = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        changes: dict[str, dict[str, Any]] = {name: {} for name in sections}
        for key, value in options.items():
            if value is None:
                continue
            owner = [name for name, sec in sections.items() if key in {f.name for f in dataclasses.fields(sec)}]
            if not owner:
                raise TypeError(f"unknown option {key!r}; known: {', '.join(sorted(option_names()))}")
            changes[owner[0]][key] = value
        return dataclasses.replace(
            self, **{name: dataclasses.replace(sec, **changes[name]) for name, sec in sections.items()}
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def option_names() -> list[str]:
    """All flat option names accepted by `PipelineConfig.with_options`."""
    cfg = PipelineConfig()
    return [f.name for sec in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, sec.name))]
