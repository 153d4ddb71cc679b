"""Run settings: frozen dataclasses, one per concern, composed into `PipelineConfig`.

Defaults are the paper's / the official code's settings. Architecture sizes are not here: they travel with
the weights (config.json, config.yaml), and the frame rate (25 fps) and face size (256 px) are fixed by the
weights too (`joygen.timeline.FPS`, `joygen.editor.FACE_SIZE`). The CLI and the app build a config with
`PipelineConfig.with_options`, whose flat option names (`seed`, `use_depth`, `crf`, ...) are the same
everywhere; each field's help text and allowed range live here, once, and the CLI and the app read them.

Every value is checked when a section is built (also through `with_options`): a wrong one raises
`ConfigError` naming the option and what it accepts. A few options are **load-time** settings: they shape
the models themselves (the face detector's search, the dtype), so `JoyGenPipeline.from_pretrained` applies
them and a call cannot change them (see `load_time_options`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .voice_activity import HANGOVER_S

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
DTYPES = ("float32", "float16", "bfloat16")
SILENCE_MODES = ("close", "keep-source", "off")


def option(
    default: Any,
    help: str,
    *,
    range: tuple[float | None, float | None] | None = None,
    choices: tuple[str, ...] | None = None,
    values: tuple[int, ...] | None = None,
    pattern: str | None = None,
    kind: type | None = None,
    optional: bool = False,
    load_time: bool = False,
    accepts: str | None = None,
    off_help: str | None = None,
):
    """A config field with what the CLI, the app and the validation need to know about it.

    Args:
        default: the paper's / official value.
        help: one line for a person (shown by the CLI and the app).
        range: inclusive (low, high) bounds of a number; None for no bound.
        choices: the allowed strings.
        values: the allowed numbers, where not every number in ``range`` is (the app offers them as a list).
        pattern: a regular expression a string must match in full.
        kind: the value's type where the default does not say (a None default).
        optional: None is allowed (and means what the help says).
        load_time: applied when the models are loaded; a call cannot change it.
        accepts: what the option accepts, in words, where the rules above do not say it well.
        off_help: for a switch that is on by default, what turning it off does (the CLI's ``--no-...`` flag).
    """
    meta = {
        "help": help,
        "range": range,
        "choices": choices,
        "values": values,
        "pattern": pattern,
        "kind": kind or type(default),
        "optional": optional or default is None,
        "load_time": load_time,
        "accepts": accepts,
        "off_help": off_help,
    }
    return field(default=default, metadata=meta)


def describe(meta: dict) -> str:
    """What an option accepts, in words: "an integer from 0 to 51", "one of: channel0, mix", ..."""
    kind, lo_hi = meta["kind"], meta["range"]
    if meta["accepts"]:
        text = meta["accepts"]
    elif meta["choices"]:
        text = "one of: " + ", ".join(meta["choices"])
    elif kind is bool:
        text = "true or false"
    elif kind in (int, float) and lo_hi:
        noun = "an integer" if kind is int else "a number"
        lo, hi = lo_hi
        text = f"{noun} from {lo:g} to {hi:g}" if hi is not None else f"{noun} of at least {lo:g}"
    else:
        text = {int: "an integer", float: "a number", str: "text"}.get(kind, kind.__name__)
    return text + (" (or none)" if meta["optional"] else "")


class _Section:
    """Validation shared by every section: each field against its metadata (type, range, choices)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = _check(f.name, value, f.metadata)
            if checked is not value:
                object.__setattr__(self, f.name, checked)


def _check(name: str, value: Any, meta: dict) -> Any:
    def fail() -> ConfigError:
        return ConfigError(name, f"option '{name}' must be {describe(meta)} (got {value!r})")

    if value is None:
        if meta["optional"]:
            return value
        raise fail()
    kind = meta["kind"]
    if kind is bool:
        if not isinstance(value, bool):
            raise fail()
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail()
        if kind is int:
            if value != int(value):
                raise fail()
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise fail()
        lo, hi = meta["range"] or (None, None)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise fail()
        if meta["values"] and value not in meta["values"]:
            raise fail()
        return value
    if kind is str:
        if not isinstance(value, str):
            raise fail()
        if meta["choices"] and value not in meta["choices"]:
            raise fail()
        if meta["pattern"] and not re.fullmatch(meta["pattern"], value):
            raise fail()
        return value
    if kind is tuple:  # MTCNN's three probability thresholds
        try:
            values = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise fail() from None
        if len(values) != 3 or not all(0.0 < v < 1.0 for v in values):
            raise fail()
        return values
    return value


@dataclass(frozen=True)
class VideoConfig(_Section):
    crf: int = option(18, "H.264 quality of the output: 0 (lossless) to 51 (worst)", range=(0, 51))
    preset: str = option("medium", "x264 speed/size preset of the output encode", choices=X264_PRESETS)
    audio_bitrate: str = option(
        "192k",
        "AAC bitrate of the output's sound, e.g. 128k",
        pattern=r"[1-9]\d{1,2}k",
        accepts="a bitrate in kbit/s from 10k to 999k, such as 128k",
    )
    max_seconds: float | None = option(
        None,
        "refuse videos and voice tracks longer than this many seconds (none: no limit)",
        kind=float,
        range=(0.1, None),
    )
    lossless: bool = option(False, "lossless RGB H.264 (exact frames, large files, not for browsers)")
    cache: bool = option(
        True,
        "reuse the per-video work (faces, 3D fits, latents, masks) across voice tracks",
        off_help="do not reuse or store the per-video work (faces, 3D fits, latents, masks)",
    )
    cache_dir: str | None = option(None, "cache folder (none: $JOYGEN_CACHE_DIR or ~/.cache/joygen)", kind=str)
    sync_score: bool = option(
        True,
        "measure the edit's lip sync with SyncNet (LSE-C, LSE-D) beside the source's, when SyncNet is installed",
        off_help="do not measure the edit's lip sync afterwards (saves a SyncNet pass over both clips)",
    )


@dataclass(frozen=True)
class FaceConfig(_Section):
    min_face_size: int = option(50, "smallest face MTCNN looks for, in pixels", range=(12, 4096), load_time=True)
    thresholds: tuple[float, float, float] = option(
        (0.6, 0.7, 0.7),
        "MTCNN's P-, R- and O-Net face probability thresholds",
        load_time=True,
        accepts="three numbers between 0 and 1 (exclusive)",
    )
    pyramid_factor: float = option(0.709, "scale step of MTCNN's image pyramid", range=(0.3, 0.95), load_time=True)
    landmark_box: bool = option(
        True,
        "crop with the official DWPose landmark box (off: the MTCNN box, and DWPose is not loaded)",
        off_help="crop every face with the MTCNN box instead of the official DWPose landmark box",
    )
    iou_threshold: float = option(
        0.5,
        "how much the landmarks must overlap the MTCNN box before their box is used",
        range=(0.0, 1.0),
    )
    crossfade_frames: int = option(
        3, "frames over which edits fade in and out next to frames without a face", range=(0, 25)
    )


@dataclass(frozen=True)
class MotionConfig(_Section):
    seed: int = option(0, "seed of the audio-to-lip-motion sampling", range=(0, 2**63 - 1))
    temperature: float = option(
        0.2,
        "noise scale of the audio-to-lip-motion sampling: 0 is the most likely motion",
        range=(0.0, 2.0),
    )
    mouth_amp: float = option(0.45, "how wide the mouth opens, fed to audio2secc", range=(0.0, 2.0))
    hubert_input: str = option(
        "channel0", "what HuBERT hears of a stereo voice: channel0 (official) or the mix", choices=("channel0", "mix")
    )


@dataclass(frozen=True)
class EditorConfig(_Section):
    use_depth: bool = option(
        True,
        "condition the editor on the audio-driven mouth depth (off: the no-depth mode)",
        off_help="skip stages 1 and 2: condition the editor on a black depth map (the official no-depth mode)",
    )
    batch_size: int = option(8, "frames per model batch; more is faster on a GPU", range=(1, 512))
    dtype: str | None = option(
        None,
        "dtype of the UNet, VAE and Whisper (none: float32 on CPU, float16 on CUDA)",
        choices=DTYPES,
        kind=str,
        load_time=True,
    )


@dataclass(frozen=True)
class BlendConfig(_Section):
    expand: float = option(1.2, "side of the paste-back context, times the face box", range=(1.0, 3.0))
    upper_boundary_ratio: float = option(
        0.5,
        "mouth-mask top: context rows above this fraction keep the source pixels",
        range=(0.0, 1.0),
    )
    feather: float = option(0.1, "paste-back feather, a fraction of the context width", range=(0.0, 1.0))


@dataclass(frozen=True)
class StabilityConfig(_Section):
    """A still mouth where the voice is silent, and no jitter (`joygen.stability`, docs/stability.md)."""

    silence_mode: str = option(
        "close",
        "where the new voice is silent for a while: close (a still, closed mouth; without depth: as keep-source), "
        "keep-source (the source frames' own mouths) or off (stage 1's motion, the official behaviour)",
        choices=SILENCE_MODES,
    )
    silence_seconds: float = option(
        0.3,
        f"shortest silence that silence_mode acts on, in seconds (after the voice detector's {HANGOVER_S:g} s hangover)",
        range=(0.04, 10.0),
    )
    silence_ease_frames: int = option(
        4, "frames over which the mouth eases into and out of a silence (close mode)", range=(0, 12)
    )
    smoothing: bool = option(
        True,
        "smooth stage 1's expressions (Savitzky-Golay, zero lag) and the face boxes (one-euro) over time",
        off_help="the official behaviour: stage 1's expressions and every frame's own face box, unsmoothed",
    )
    expression_window: int = option(
        5,
        "Savitzky-Golay window over stage 1's expressions, in frames (1: no expression smoothing)",
        range=(1, 25),
        values=(1, *range(5, 26, 2)),
        accepts="an odd number of frames from 5 to 25, or 1 (no expression smoothing)",
    )
    box_min_cutoff: float = option(
        1.0, "face-box one-euro filter: cutoff when the head is still, in Hz (lower: steadier)", range=(0.05, 12.5)
    )
    box_beta: float = option(
        2.0,
        "face-box one-euro filter: how much the cutoff rises with the head's speed (higher: follows motion sooner)",
        range=(0.0, 100.0),
    )


@dataclass(frozen=True)
class PipelineConfig:
    video: VideoConfig = field(default_factory=VideoConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    editor: EditorConfig = field(default_factory=EditorConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    stability: StabilityConfig = field(default_factory=StabilityConfig)

    def with_options(self, **options: Any) -> PipelineConfig:
        """Return a copy with flat options replaced, e.g. ``with_options(seed=1, use_depth=False)``.

        Option names are the field names of the sections; they are unique across sections. ``None`` values
        are ignored so that unset CLI flags keep the defaults.

        Raises:
            TypeError: for a name no section has.
            ConfigError: for a value out of range, naming the option and what it accepts.
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

    def option(self, name: str) -> Any:
        """The value of a flat option."""
        for sec in dataclasses.fields(self):
            section = getattr(self, sec.name)
            if name in {f.name for f in dataclasses.fields(section)}:
                return getattr(section, name)
        raise TypeError(f"unknown option {name!r}")

    def load_time_differences(self, loaded: PipelineConfig) -> list[str]:
        """Load-time options set in ``self`` to other values than in ``loaded`` (None in ``self``: not set)."""
        return [n for n in load_time_options() if self.option(n) is not None and self.option(n) != loaded.option(n)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def option_fields() -> dict[str, dataclasses.Field]:
    """Every flat option name -> its dataclass field (default, help, range, ... in ``.metadata``)."""
    cfg = PipelineConfig()
    return {f.name: f for sec in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, sec.name))}


def option_names() -> list[str]:
    """All flat option names accepted by `PipelineConfig.with_options`."""
    return list(option_fields())


def load_time_options() -> list[str]:
    """Options applied when the models are loaded (`JoyGenPipeline.from_pretrained`), fixed afterwards."""
    return [name for name, f in option_fields().items() if f.metadata["load_time"]]


def option_help(name: str) -> str:
    """The option's help line with its default, for ``--help`` texts and the app."""
    f = option_fields()[name]
    if f.default is None:  # the help says what none means
        return f.metadata["help"]
    shown = str(f.default).lower() if isinstance(f.default, bool) else f.default
    return f"{f.metadata['help']} (default {shown})"
