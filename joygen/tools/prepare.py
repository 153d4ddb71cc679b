"""``python -m joygen prepare VIDEOS_DIR OUT_DIR``: talking-face videos -> an editor training set.

Each video goes through the same stages as an edit, with the frame's *own* expression instead of an
audio-driven one (the official ``preprocess_dataset.py``): 25 fps frames, MTCNN + DWPose face boxes (the
official training gate: IoU 0.7), Deep3DFaceRecon coefficients, the mouth depth of the frame's own
expression and its 468 landmarks, and the Whisper features of the video's own sound. Only frames with
exactly one face are kept, in spans of at least ``min_span`` frames; frames past the end of the sound are
dropped too. Everything runs in batches, on the GPU when there is one.

Layout of ``OUT_DIR/<video id>/``::

    faces/%06d.jpg      face crop at the face box (what the editor sees, before its 256 resize)
    depth/%06d.png      8-bit depth of the face with its own expression, cut to the same box (the lip mask
                        is applied at training time, from the landmarks)
    landmarks.npy       [F, 468, 2] float32 landmarks relative to the box (NaN where dropped)
    boxes.npy           [F, 4] float32 face boxes in the frame (NaN where dropped)
    whisper.f16         [T, 5, 384] float16 Whisper states of the video's sound (raw; shape in meta.json)
    meta.json           frames kept, spans, what was dropped and why -- written last

A video whose ``meta.json`` exists is done: a rerun skips it, so preparation resumes per video.
``OUT_DIR/manifest.json`` lists the videos and ``OUT_DIR/summary.json`` totals what was dropped and why.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..assemble import load_face_detector, load_mouth_depth, load_whisper
from ..boxes import crop_padded
from ..config import FaceConfig
from ..errors import InputError, JoyGenError
from ..media import load_audio, probe
from ..timeline import FPS, chunk_count
from ..video import SourceFrames, prefetch
from ..weights.locator import WeightsLocator

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
NEEDED = ("mtcnn", "dwpose", "face_recon", "bfm", "whisper")


@dataclass(frozen=True)
class PrepareConfig:
    iou_threshold: float = 0.7  # the official training gate for the landmark box (inference: 0.5)
    min_span: int = 7  # frames; shorter single-face spans are dropped (the official drops < 7 depth maps)
    face_quality: int = 95  # JPEG quality of the face crops
    batch_size: int = 16  # frames per batch
    min_face_size: int = 50  # px, MTCNN


class Preparer:
    """The stage modules preparation needs, loaded once."""

    def __init__(self, weights_dir=None, device: str = "cpu", config: PrepareConfig | None = None):
        self.config = config or PrepareConfig()
        weights = WeightsLocator(weights_dir).resolve(NEEDED)
        self.weights = weights
        face = FaceConfig(min_face_size=self.config.min_face_size, iou_threshold=self.config.iou_threshold)
        self.detector = load_face_detector(weights, face, device)  # the pipeline's constructors
        self.detector.mtcnn.to(device)
        self.depth = load_mouth_depth(weights).to(device)
        self.whisper = load_whisper(weights).to(device)

    @torch.no_grad()
    def video(self, path: Path, out: Path) -> dict:
        """Prepare one video into ``out`` (see the module docstring); returns its meta data."""
        cfg = self.config
        info = probe(path, "video")
        if info.video is None or info.still_image:
            raise InputError(f"'{path}' is not a video")
        if info.audio is None:
            raise InputError(f"'{path}' has no sound track; training pairs each frame with its own sound")
        stream = self.whisper.stream(load_audio(path, info=info))
        usable = chunk_count(stream.num_frames)  # frames the sound covers
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "faces").mkdir(parents=True)
        (tmp / "depth").mkdir()
        with open(tmp / "whisper.f16", "wb") as fh:
            for w in range(len(stream.keep)):
                fh.write(stream.window_states(w).half().numpy().tobytes())
        reasons: Counter = Counter()
        boxes, landmarks, kept = {}, {}, []
        total = 0
        with tempfile.TemporaryDirectory(prefix="joygen-prepare-") as work:
            frames_iter = prefetch(enumerate(SourceFrames(info, work).decode()))
            batch: list[tuple[int, np.ndarray]] = []
            for item in frames_iter:
                batch.append(item)
                if len(batch) == cfg.batch_size:
                    total += self._batch(batch, usable, tmp, boxes, landmarks, kept, reasons)
                    batch = []
            if batch:
                total += self._batch(batch, usable, tmp, boxes, landmarks, kept, reasons)
        kept, spans = self._spans(sorted(kept), tmp, reasons)
        lm = np.full((total, 468, 2), np.nan, np.float32)
        bx = np.full((total, 4), np.nan, np.float32)
        for i in kept:
            lm[i], bx[i] = landmarks[i], boxes[i]
        np.save(tmp / "landmarks.npy", lm)
        np.save(tmp / "boxes.npy", bx)
        meta = {
            "source": str(path),
            "frames": total,
            "kept": kept,
            "spans": spans,
            "dropped": dict(reasons),
            "whisper": {"file": "whisper.f16", "shape": [stream.num_frames, 5, stream.model.encoder.config.d_model]},
            "fps": FPS,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        return meta

    def _batch(self, batch, usable, tmp, boxes, landmarks, kept, reasons) -> int:
        indices = [i for i, _ in batch]
        frames = [f for _, f in batch]
        faces = self.detector(frames)
        take = []
        for k, (i, face) in enumerate(zip(indices, faces)):
            if i >= usable:
                reasons["beyond the sound"] += 1
            elif face is None:
                reasons["no face"] += 1
            elif face.faces_in_frame > 1:
                reasons["several faces"] += 1
            else:
                take.append(k)
        if take:
            results = self.depth([frames[k] for k in take], [faces[k] for k in take], expressions=None)
            for k, result in zip(take, results):
                i, face = indices[k], faces[k]
                crop = crop_padded(frames[k], face.crop_box)
                cv2.imwrite(
                    str(tmp / "faces" / f"{i:06d}.jpg"),
                    crop[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, self.config.face_quality],
                )
                cv2.imwrite(str(tmp / "depth" / f"{i:06d}.png"), result.depth_crop)
                boxes[i], landmarks[i] = face.box, result.landmarks468
                kept.append(i)
        return len(batch)

    def _spans(self, kept: list[int], tmp: Path, reasons: Counter) -> tuple[list[int], list[list[int]]]:
        """Group kept frames into runs of consecutive frames; drop runs shorter than ``min_span``."""
        spans, start = [], None
        for j, i in enumerate(kept):
            if start is None:
                start = i
            if j + 1 == len(kept) or kept[j + 1] != i + 1:
                spans.append([start, i + 1])
                start = None
        final, long_spans = [], []
        for a, b in spans:
            if b - a < self.config.min_span:
                reasons["short span"] += b - a
                for i in range(a, b):
                    (tmp / "faces" / f"{i:06d}.jpg").unlink()
                    (tmp / "depth" / f"{i:06d}.png").unlink()
            else:
                long_spans.append([a, b])
                final += list(range(a, b))
        return final, long_spans


def video_id(path: Path) -> str:
    return f"{path.stem}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"


def prepare(
    videos: str | Path,
    out_dir: str | Path,
    weights_dir=None,
    device: str = "cpu",
    config: PrepareConfig | None = None,
    log=print,
) -> dict:
    """Prepare every video of a folder (or one video file); returns the summary."""
    videos = Path(videos)
    if videos.is_file():
        files = [videos]
    elif videos.is_dir():
        files = sorted(p for p in videos.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        raise InputError(f"'{videos}' is neither a video nor a folder")
    if not files:
        raise InputError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) in '{videos}'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preparer = None
    manifest, totals, failed = [], Counter(), {}
    for n, path in enumerate(files, start=1):
        vid = video_id(path)
        meta_file = out / vid / "meta.json"
        if meta_file.is_file():
            meta = json.loads(meta_file.read_text())
            log(f"{n}/{len(files)} {path.name}: already prepared, skipped")
        else:
            preparer = preparer or Preparer(weights_dir, device, config)
            try:
                meta = preparer.video(path, out / vid)
            except JoyGenError as exc:
                failed[str(path)] = str(exc)
                log(f"{n}/{len(files)} {path.name}: dropped: {exc}")
                continue
            log(f"{n}/{len(files)} {path.name}: kept {len(meta['kept'])} of {meta['frames']} frames")
        manifest.append({"id": vid, "source": str(path), "frames": meta["frames"], "kept": len(meta["kept"])})
        totals.update(meta["dropped"])
    summary = {
        "videos": len(files),
        "prepared": len(manifest),
        "videos_dropped": failed,
        "frames": sum(m["frames"] for m in manifest),
        "frames_kept": sum(m["kept"] for m in manifest),
        "frames_dropped": dict(totals),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
