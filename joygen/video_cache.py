"""The per-video work, cached on disk: edit the same video with another voice without redoing it.

Everything the pipeline computes from a source frame alone is independent of the voice track: the face
(box, 5 points, landmarks; with smoothing, the box smoothed over the source frames before it, and the detector's
own box), the Deep3DFaceRecon coefficients and alignment, the VAE latents of the masked and
the reference face, and the face-parsing mask of the paste-back. A second edit of the same video reads these
back and only runs what the new audio changes: the mouth depth, one VAE encode, the UNet, the decode and the
blend (MuseTalk's "prepare an avatar once" idea, for every video, automatically).

Entries are content-addressed: the sha256 of the video file plus a fingerprint of every setting and weight
file that shapes them. They are written in chunks of `CHUNK` source frames (``.npz``, written atomically), so
a run never holds more than a chunk or two in memory, and a run interrupted part-way leaves usable chunks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .face3d.detection import Face
from .face3d.reconstruction import Alignment
from .files import os_error_text, sha256_of
from .stability import BOX_DERIVATIVE_CUTOFF, BOX_MAX_SHIFT, BOX_RESET_IOU
from .timeline import FPS

CHUNK = 64  # source frames per cache file
LATENT_SHAPE = (8, 32, 32)  # masked + reference latents of one face
PARSING_SIDE = 512  # px; the face-parsing mask is stored bit-packed at this size
CACHE_VERSION = 2  # 2: the detector's own box beside the (smoothed) crop box
CACHED_WEIGHTS = ("mtcnn", "dwpose", "vae", "face_parsing", "face_recon", "bfm")  # shape the per-video work


def fingerprint(cfg, weights: dict, dtype: str) -> dict:
    """Every setting that shapes the per-video work (`CACHED_WEIGHTS`' file hashes given as ``weights``): the key
    of a video's entry beside its sha256. ``cfg``: a `joygen.config.PipelineConfig`."""
    st = cfg.stability
    box_filter = [st.box_min_cutoff, st.box_beta, BOX_DERIVATIVE_CUTOFF, BOX_MAX_SHIFT, BOX_RESET_IOU]
    return {
        "fps": FPS,
        "face": {k: v for k, v in dataclasses.asdict(cfg.face).items() if k != "crossfade_frames"},
        "box_smoothing": box_filter if st.smoothing else None,  # smoothed boxes change the crops
        "expand": cfg.blend.expand,
        "dtype": dtype,
        "weights": weights,
    }


def open_entry(video: str | Path, key: dict, cache_dir: str | Path, warnings: list[str]):
    """The entry of ``video`` under ``key`` (`fingerprint`), as a context: flushed when the batches end, also
    after a failure (finished frames stay reusable); a failed store adds a warning (the edit is complete)."""
    cache = VideoCache(cache_dir, sha256_of(video), key)

    @contextmanager
    def flushed():
        try:
            yield cache
        finally:
            cache.flush()
            if cache.problem:
                warnings.append(f"the per-video cache was not stored ({cache.problem}); the edit is complete")

    return flushed()


def default_cache_dir() -> Path:
    """``$JOYGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/joygen`` (``~/.cache/joygen``)."""
    env = os.environ.get("JOYGEN_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "joygen"


@dataclass
class FrameAnalysis:
    """The voice-independent analysis of one source frame: what the video cache stores."""

    face: Face | None  # None: no face, the frame passes through
    latents: np.ndarray | None = None  # (8, 32, 32) float32: masked then reference latent
    parsing: np.ndarray | None = None  # (512, 512) uint8 face mask of the paste-back context (0/255)
    coeffs: np.ndarray | None = None  # (257,) float32 R-Net coefficients (only when the 3D stage ran)
    alignment: Alignment | None = None


class VideoCache:
    """Cached per-frame work of one video under one fingerprint.

    Args:
        root: the cache folder (see `default_cache_dir`).
        video_digest: sha256 of the video file.
        fingerprint: settings and weights that shape the cached work (any JSON-able dict).
    """

    def __init__(self, root: str | Path, video_digest: str, fingerprint: dict):
        key = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **fingerprint}, sort_keys=True).encode()).hexdigest()
        self.folder = Path(root) / "videos" / f"{video_digest[:32]}-{key[:16]}"
        self.problem: str | None = None  # why entries could not be stored (the run goes on without storing)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.problem = f"cannot create '{self.folder}': {os_error_text(exc)}"
        self._loaded: OrderedDict[int, dict] = OrderedDict()  # chunk -> arrays (at most 2 kept)
        self._pending: dict[int, dict[int, FrameAnalysis]] = {}  # chunk -> new entries not yet written
        self.hits = self.misses = 0

    def _path(self, chunk: int) -> Path:
        return self.folder / f"chunk_{chunk:06d}.npz"

    def _chunk(self, chunk: int) -> dict | None:
        if chunk in self._loaded:
            self._loaded.move_to_end(chunk)
            return self._loaded[chunk]
        path = self._path(chunk)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError):  # a damaged file is a miss
            return None
        self._loaded[chunk] = arrays
        while len(self._loaded) > 2:
            self._loaded.popitem(last=False)
        return arrays

    def get(self, source_index: int, need_coeffs: bool) -> FrameAnalysis | None:
        """The cached work of a source frame, or None (not cached, or without coefficients when needed)."""
        chunk, row = divmod(source_index, CHUNK)
        pending = self._pending.get(chunk, {}).get(row)
        if pending is not None and (pending.face is None or not need_coeffs or pending.coeffs is not None):
            self.hits += 1
            return pending
        arrays = self._chunk(chunk)
        if arrays is None or not arrays["valid"][row]:
            self.misses += 1
            return None
        work = _unpack(arrays, row)
        if need_coeffs and work.face is not None and work.coeffs is None:
            self.misses += 1
            return None
        self.hits += 1
        return work

    def put(self, source_index: int, work: FrameAnalysis) -> None:
        chunk, row = divmod(source_index, CHUNK)
        self._pending.setdefault(chunk, {})[row] = work
        if len(self._pending[chunk]) == CHUNK:
            self._write(chunk)

    def flush(self) -> None:
        """Write every chunk that has new entries (merged with what the file already holds)."""
        for chunk in list(self._pending):
            self._write(chunk)

    def _write(self, chunk: int) -> None:
        """Store a chunk atomically. A cache that cannot be written (full disk, no permission) is not an error
        of the edit: the problem is kept in `problem` and nothing more is stored."""
        new = self._pending.pop(chunk)
        if self.problem is not None:
            return
        old = self._chunk(chunk)
        arrays = {k: v.copy() for k, v in old.items()} if old is not None else _empty()
        for row, work in new.items():
            _pack(arrays, row, work)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".npz.tmp")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, self._path(chunk))
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            self.problem = f"cannot write to '{self.folder}': {os_error_text(exc)}"
        self._loaded.pop(chunk, None)


def _empty() -> dict[str, np.ndarray]:
    n = CHUNK
    return {
        "valid": np.zeros(n, bool),
        "has_face": np.zeros(n, bool),
        "box": np.zeros((n, 4), np.float64),
        "mtcnn_box": np.zeros((n, 4), np.float64),
        "detected_box": np.full((n, 4), np.nan, np.float64),  # NaN: the box was not smoothed
        "points": np.zeros((n, 5, 2), np.float32),
        "score": np.zeros(n, np.float32),
        "lm68": np.full((n, 68, 2), np.nan, np.float32),
        "landmark_box": np.zeros(n, bool),
        "latents": np.zeros((n, *LATENT_SHAPE), np.float32),  # float32: the UNet input is exactly a fresh run's
        "parsing": np.zeros((n, PARSING_SIDE * PARSING_SIDE // 8), np.uint8),
        "coeffs": np.full((n, 257), np.nan, np.float32),
        "align": np.full((n, 7), np.nan, np.float64),
    }


def _pack(a: dict, row: int, work: FrameAnalysis) -> None:
    a["valid"][row] = True
    face = work.face
    a["has_face"][row] = face is not None
    if face is None:
        return
    a["box"][row], a["mtcnn_box"][row] = face.box, face.mtcnn_box
    if face.detected_box is not None:
        a["detected_box"][row] = face.detected_box
    a["points"][row], a["score"][row] = face.points, face.score
    a["landmark_box"][row] = face.box_source == "landmarks"
    if face.landmarks68 is not None:
        a["lm68"][row] = face.landmarks68
    a["latents"][row] = work.latents
    a["parsing"][row] = np.packbits(work.parsing.reshape(-1) > 0)
    if work.coeffs is not None:
        al = work.alignment
        a["coeffs"][row] = work.coeffs
        a["align"][row] = [al.width, al.height, al.scale, al.left, al.up, *al.translation]


def _unpack(a: dict, row: int) -> FrameAnalysis:
    if not a["has_face"][row]:
        return FrameAnalysis(None)
    lm68, detected = a["lm68"][row], a["detected_box"][row]
    face = Face(
        tuple(float(v) for v in a["box"][row]),
        a["points"][row].copy(),
        float(a["score"][row]),
        tuple(float(v) for v in a["mtcnn_box"][row]),
        None if np.isnan(lm68).any() else lm68.copy(),
        "landmarks" if a["landmark_box"][row] else "mtcnn",
        detected_box=None if np.isnan(detected).any() else tuple(float(v) for v in detected),
    )
    parsing = np.unpackbits(a["parsing"][row]).reshape(PARSING_SIDE, PARSING_SIDE) * np.uint8(255)
    coeffs = alignment = None
    if not np.isnan(a["coeffs"][row]).any():
        coeffs = a["coeffs"][row].copy()
        w, h, s, left, up, tx, ty = a["align"][row]
        alignment = Alignment(int(w), int(h), float(s), int(left), int(up), (float(tx), float(ty)))
    return FrameAnalysis(face, a["latents"][row].copy(), parsing, coeffs, alignment)
