"""What the rest of joygen calls: find and load the metric networks, and score one video.

`sync_score` is the function for after an edit (the report, the CLI, the app); `source_sync_score` scores the
source clip with its own voice, the reference an edit is compared with. Both return ``None`` when no SyncNet
weights are found; `syncnet_hint` then says how to add them.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import JoyGenError, WeightsError
from ..weights.locator import ARTIFACTS, ResolvedArtifact, WeightSet, WeightsLocator, file_sha256
from .score import ScoreConfig, score_video
from .syncnet import SyncNet, load_syncnet
from .tracks import MTCNN_MIN_FACE, TrackConfig

PROTOCOL = "syncnet_python 6efbb1c evaluate (vshift 15, 25 fps, JPEG round trip); face tracks by run_pipeline rules"
FRAME_MS = 40


@dataclass
class LoadedModel:
    model: object
    source: str  # where it came from
    path: str | None
    sha256: str | None
    tiny: bool
    official: bool | None  # sha256 equals the table's digest of the original file (None: unknown)

    def describe(self) -> dict:
        return {
            "source": self.source,
            "path": self.path,
            "sha256": self.sha256,
            "tiny": self.tiny,
            "official": self.official,
        }


_LOCAL = "local folder "


def _locator(weights) -> WeightsLocator:
    """Where to look: the given locator or folder; for a `WeightSet` (an edit's weights), its local folder."""
    if isinstance(weights, WeightsLocator):
        return weights
    if isinstance(weights, WeightSet):
        local = [r.source[len(_LOCAL) :] for r in weights.artifacts.values() if r.source.startswith(_LOCAL)]
        return WeightsLocator(local[0] if local else None)
    if isinstance(weights, (str, Path)) and not Path(weights).is_file():
        return WeightsLocator(weights)
    return WeightsLocator()


def find_artifact(name: str, weights=None) -> ResolvedArtifact | None:
    """``weights``: a weights folder, a `WeightsLocator`, a `WeightSet` or `ResolvedArtifact`, or None (defaults).

    A `WeightSet` (what `JoyGenPipeline.weights` holds) is searched first, then the folder it was loaded from.
    """
    if isinstance(weights, ResolvedArtifact):
        return weights
    if isinstance(weights, WeightSet) and name in weights:
        return weights[name]
    return _locator(weights).find(name)


@functools.lru_cache(maxsize=4)
def _load_cached(kind: str, path: str, mtime_ns: int, device: str):
    if kind == "syncnet":
        return load_syncnet(path, device)
    from .fid import load_inception

    return load_inception(path, device)


def _loaded(name: str, weights, device: str) -> LoadedModel | None:
    found = find_artifact(name, weights)
    if found is None:
        return None
    path = next(iter(found.files.values()))
    model = _load_cached(name, str(path), path.stat().st_mtime_ns, str(device))
    digest = file_sha256(path)
    official = digest == next(iter(ARTIFACTS[name].sha256.values()))
    return LoadedModel(model, found.source, str(path), digest, found.tiny, official)


def load_syncnet_weights(weights=None, device: str = "cpu") -> LoadedModel | None:
    """The SyncNet of ``weights`` (a `SyncNet`, a ``syncnet_v2.model`` file, or anything `find_artifact` takes)."""
    if isinstance(weights, SyncNet):
        return LoadedModel(weights, "model object", None, None, False, None)
    if isinstance(weights, (str, Path)) and Path(weights).is_file():
        path = Path(weights)
        model = _load_cached("syncnet", str(path), path.stat().st_mtime_ns, str(device))
        digest = file_sha256(path)
        official = digest == ARTIFACTS["syncnet"].sha256["syncnet_v2.model"]
        return LoadedModel(model, f"file {path}", str(path), digest, False, official)
    return _loaded("syncnet", weights, device)


def load_inception_weights(weights=None, device: str = "cpu") -> LoadedModel | None:
    """The FID Inception of ``weights`` (a weights folder, locator, weight set, or a .pth file)."""
    if isinstance(weights, (str, Path)) and Path(weights).is_file():
        path = Path(weights)
        digest = file_sha256(path)
        model = _load_cached("inception", str(path), path.stat().st_mtime_ns, str(device))
        official = digest == next(iter(ARTIFACTS["inception"].sha256.values()))
        return LoadedModel(model, f"file {path}", str(path), digest, False, official)
    return _loaded("inception", weights, device)


def syncnet_hint(weights=None) -> str | None:
    """None when SyncNet weights are found, else how to add them (one paragraph)."""
    if isinstance(weights, SyncNet) or (isinstance(weights, (str, Path)) and Path(weights).is_file()):
        return None
    if find_artifact("syncnet", weights) is not None:
        return None
    locator = _locator(weights)
    return (
        "Lip-sync scores (LSE-C / LSE-D) need SyncNet's weights, which are not installed. "
        + locator.how_to_supply(ARTIFACTS["syncnet"])
        + "."
    )


@functools.lru_cache(maxsize=2)
def _mtcnn_faces(folder: str, device: str, min_face_size: int):
    from ..face3d.mtcnn import MTCNN
    from .tracks import MTCNNFaces

    return MTCNNFaces(MTCNN.from_pretrained(folder, min_face_size=min_face_size).to(device))


def default_detector(weights=None, device: str = "cpu"):
    """MTCNN from the same weights as SyncNet (falling back to the facenet-pytorch wheel), loaded once."""
    found = find_artifact("mtcnn", weights)
    if found is None:
        raise WeightsError(_locator(weights).missing_message(["mtcnn"]))
    return _mtcnn_faces(str(found.folder), str(device), MTCNN_MIN_FACE)


@functools.lru_cache(maxsize=2)
def _vad_from(path: str, source: str):
    from ..voice_activity import VoiceActivityDetector

    return VoiceActivityDetector(path, source)


def default_vad(weights=None):
    """The voice activity detector (Silero VAD) that ``weights`` or the defaults resolve to, or None; loaded once."""
    found = find_artifact("vad", None if isinstance(weights, SyncNet) else weights)
    if found is None:
        return None
    return _vad_from(str(next(iter(found.files.values()))), found.source)


def meaning(row: dict, tiny: bool = False, role: str = "edited", official: bool | None = True) -> str:
    """One plain-language sentence about a scored row."""
    if row.get("lse_c") is None:
        return f"Lip sync could not be measured: {row.get('reason', 'unknown reason')}"
    offset = int(row["offset"])
    if offset == 0:
        where = "voice and lips line up best with no shift"
    else:
        side = "ahead of" if offset > 0 else "behind"
        where = f"voice and lips line up best when the voice is taken as {abs(offset)} frame(s) ({abs(offset) * FRAME_MS} ms) {side} the lips"
    what = "The source clip with its own voice" if role == "source" else "This video"
    sentence = (
        f"{what} has a SyncNet confidence (LSE-C) of {row['lse_c']:.2f}, higher is better, and a distance (LSE-D) of "
        f"{row['lse_d']:.2f}, lower is better; {where}"
    )
    if tiny:
        sentence += " (random test weights: these numbers mean nothing)"
    elif official is False:
        sentence += " (not the official syncnet_v2.model: not comparable with published numbers)"
    return sentence + "."


def sync_score(
    video_path: str | Path,
    weights_or_model=None,
    *,
    audio: str | Path | None = None,
    cropped: bool = False,
    device: str = "cpu",
    min_track: int = TrackConfig.min_track,
    detector=None,
    work_dir: str | Path | None = None,
    role: str = "edited",
) -> dict | None:
    """LSE-C / LSE-D of one video by the official protocol, or None when no SyncNet weights are found.

    Args:
        video_path: an edited video (any size; its faces are tracked), or a 224x224 face track with ``cropped``.
        weights_or_model: a `SyncNet`, a ``syncnet_v2.model`` file, a weights folder, a `WeightsLocator` or a
            `WeightSet`; None looks in the default places (see `joygen.weights`).
        audio: score against this sound instead of the video's own track.
        min_track: a face track needs more detections than this (official: 100 frames = 4 s).
        detector: a face detector (see `joygen.metrics.tracks.MTCNNFaces`); default MTCNN from the same weights.
        work_dir: scratch folder (kept); default a temporary one, removed.
        role: "edited" or "source" (changes only the wording of ``meaning``).

    Returns:
        ``{"offset", "lse_c", "lse_d", "frames", "frames_scored", "frames_without_face", "windows", "tracks",
        "meaning", "status", "reason", "tiny_weights", "weights", "protocol"}`` and, for an uncropped video,
        ``jitter`` (box and mouth-corner motion of the face track, in voiced and silent frames). ``status`` is "ok" or "failed";
        on failure the scores are None and ``reason`` says why (no sound, no face, too short, ...).
    """
    loaded = load_syncnet_weights(weights_or_model, device)
    if loaded is None:
        return None
    net = loaded.model
    if not cropped and detector is None:
        detector = default_detector(None if isinstance(weights_or_model, SyncNet) else weights_or_model, device)
    config = ScoreConfig(TrackConfig(min_track=min_track))
    with tempfile.TemporaryDirectory(prefix="joygen-sync-") as tmp:
        work = Path(work_dir) if work_dir else Path(tmp)
        try:
            vad = None if cropped else default_vad(weights_or_model)
            row = score_video(
                video_path, net, work, detector=detector, audio=audio, cropped=cropped, config=config, vad=vad
            )
            row.update(status="ok", reason=None)
        except JoyGenError as exc:
            row = {"offset": None, "lse_c": None, "lse_d": None, "frames": None, "status": "failed", "reason": str(exc)}
    row["meaning"] = meaning(row, loaded.tiny, role, loaded.official)
    row["tiny_weights"] = loaded.tiny
    row["weights"] = loaded.describe()
    row["protocol"] = PROTOCOL + ("; input taken as a face track" if cropped else "; MTCNN face detection")
    return row


def source_sync_score(source_video: str | Path, weights_or_model=None, **kwargs) -> dict | None:
    """`sync_score` of the source clip with its own voice: the reference ("GT") row for an edit."""
    kwargs.pop("audio", None)
    return sync_score(source_video, weights_or_model, role="source", **kwargs)


EDIT_MIN_TRACK = TrackConfig.min_track  # an edit's tracks: the official 100 detections, or the clip less one frame
EDIT_MIN_FRAMES = 13  # shorter edits are not scored: the official 13-tap box smoothing needs that many frames


def edit_sync_block(
    edited: str | Path,
    source: str | Path,
    source_has_sound: bool,
    weights=None,
    *,
    num_frames: int,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress=None,
) -> dict:
    """The ``sync`` block of an edit's report: the edited clip's lip sync beside the source's with its own voice.

    Without SyncNet weights: ``{"available": False, "how": ...}``. Else ``{"available": True, "edited": row,
    "source": row, "min_track": ..., "summary": one sentence}`` with rows as `sync_score` returns them. Shorter
    clips than the official 4 s are tracked with ``min_track = frames - 1`` (said in the block). The source's
    row is kept in ``cache_dir`` (keyed by the source file and the SyncNet file), so a second voice for the same
    video scores only the edit. ``progress(done, 2)`` is called before, between and after the two videos.
    """
    import json

    def step(done: int) -> None:
        if progress is not None:
            progress(done, 2)

    from ..files import sha256_of

    hint = syncnet_hint(weights)
    if hint is not None:
        return {"available": False, "how": hint}
    if num_frames < EDIT_MIN_FRAMES:
        short = _failed(f"the edit has {num_frames} frames; lip sync is measured from {EDIT_MIN_FRAMES} frames on")
        return {
            "available": True,
            "edited": short,
            "source": None,
            "min_track": None,
            "summary": sync_summary(short, None),
        }
    min_track = max(1, min(EDIT_MIN_TRACK, num_frames - 1))
    step(0)
    edited_row = _never_raises(sync_score, edited, weights, device=device, min_track=min_track)
    step(1)
    source_row: dict | None
    if not source_has_sound:
        source_row = _failed("the source has no sound of its own to compare with")
    else:
        memo = None
        if cache_dir is not None and edited_row.get("weights", {}).get("sha256"):
            key = f"{sha256_of(source)[:32]}-{edited_row['weights']['sha256'][:16]}-{min_track}"
            memo = Path(cache_dir) / "sync" / f"{key}.json"
        if memo is not None and memo.is_file():
            source_row = json.loads(memo.read_text())
        else:
            source_row = _never_raises(source_sync_score, source, weights, device=device, min_track=min_track)
            if memo is not None and source_row.get("status") == "ok":
                try:
                    memo.parent.mkdir(parents=True, exist_ok=True)
                    memo.write_text(json.dumps(source_row))
                except OSError:
                    pass  # a cache that cannot be written only costs time next run
    step(2)
    return {
        "available": True,
        "edited": edited_row,
        "source": source_row,
        "min_track": min_track,
        "summary": sync_summary(edited_row, source_row),
    }


def _failed(reason: str) -> dict:
    return {"status": "failed", "reason": reason, "lse_c": None, "lse_d": None, "offset": None}


def _never_raises(score, *args, **kwargs) -> dict:
    """A score, or a failed row: measuring a finished edit must never lose it (a bug here is reported, not
    raised; `sync_score` itself turns every problem with the input into a failed row)."""
    try:
        return score(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the edit is done; its report says what went wrong
        return _failed(f"the lip-sync measurement failed ({type(exc).__name__}: {exc}); please report it")


def sync_summary(edited: dict, source: dict | None) -> str:
    """One line: the edit's LSE-C / LSE-D and offset beside the source's, and what the numbers mean."""
    if edited.get("lse_c") is None:
        return f"Lip sync not measured: {edited.get('reason')}"
    text = f"LSE-C {edited['lse_c']:.2f}, LSE-D {edited['lse_d']:.2f}, offset {int(edited['offset'])}"
    if source and source.get("lse_c") is not None:
        text += f" (source with its own voice: LSE-C {source['lse_c']:.2f}, LSE-D {source['lse_d']:.2f})"
    text += ". Higher LSE-C and lower LSE-D mean lips and voice agree better; an offset near 0 means no delay."
    if edited.get("tiny_weights"):
        text += " Random test weights: these numbers mean nothing."
    return text
