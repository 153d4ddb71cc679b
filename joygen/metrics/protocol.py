"""The official SyncNet evaluation (syncnet_python ``SyncNetInstance.evaluate``, commit 6efbb1c), step by step.

For one face-track clip (224x224 frames at 25 fps with a sound track):

1. **Frames**: ``ffmpeg -y -i CLIP -threads 1 -f image2 DIR/%06d.jpg`` with ffmpeg's default JPEG settings, then
   read back with ``cv2.imread`` (BGR uint8). This JPEG round trip is part of the metric: skipping it moves LSE-D
   by about 2 (see docs/evaluation.md).
2. **Audio**: ``ffmpeg -y -i CLIP -async 1 -ac 1 -vn -acodec pcm_s16le -ar 16000 audio.wav``, read as int16 values
   (not scaled to [-1, 1]); MFCCs as `joygen.metrics.mfcc.mfcc` (100 per second).
3. **Lengths**: ``min_length = min(frames, samples // 640)``; ``n_windows = min_length - 5`` (the last full
   5-frame window is dropped, as the official code does).
4. **Embeddings**: window v = frames v..v+4 as ``[3, 5, 224, 224]`` (BGR, 0..255, no normalisation) and MFCC
   columns 4v..4v+19 as ``[1, 13, 20]``; batches of 20 windows.
5. **Distances**: audio embeddings zero-padded by ``vshift = 15`` windows at both ends;
   ``dists[i, k] = || lip[i] - audio_pad[i + k] + 1e-6 ||`` for k = 0..30; ``mdist`` = mean over windows.
   **LSE-D** = ``min(mdist)``; **AV offset** = ``vshift - argmin``; **LSE-C** = ``torch.median(mdist) - min``
   (the lower median of the 31 values).

`evaluate` runs steps 3-5 on frames and samples; `evaluate_clip` runs all of them on a clip file. Both are what
``python -m joygen eval`` and `joygen.metrics.sync_score` call, and what the parity tests check against the
golden arrays of the official code.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..media import MediaInfo, probe, run_ffmpeg
from ..timeline import FPS, SAMPLE_RATE  # syncnet_python assumes both, as joygen does
from .mfcc import mfcc

VSHIFT = 15  # offsets searched: -15..+15 frames
BATCH_SIZE = 20  # windows per forward pass (the default of every official script)
WINDOW_FRAMES = 5
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
MFCC_PER_FRAME = 4
MFCC_WINDOW = 20
CROP_SIZE = 224


@dataclass
class SyncEvaluation:
    """Everything the official ``evaluate`` holds at its end, for one clip."""

    n_frames: int  # video frames read
    n_samples: int  # audio samples read (16 kHz)
    min_length: int
    n_windows: int
    mfcc: np.ndarray  # [13, n_mfcc] float64
    im_feat: np.ndarray  # [n_windows, D] float32, lip embeddings
    cc_feat: np.ndarray  # [n_windows, D] float32, audio embeddings
    dists: np.ndarray  # [n_windows, 2 * vshift + 1] float32; column k = offset vshift - k
    mdist: np.ndarray  # [2 * vshift + 1] float32
    minval: float  # LSE-D
    conf: float  # LSE-C
    minidx: int
    offset: int  # AV offset in frames
    median: float
    fdist: np.ndarray  # [n_windows] distance at the best offset
    fconf: np.ndarray  # [n_windows] framewise confidence
    fconfm: np.ndarray  # [n_windows] its 9-tap median filter (printed only, by the official code)
    vshift: int = VSHIFT
    notes: list[str] = field(default_factory=list)

    @property
    def lse_d(self) -> float:
        return self.minval

    @property
    def lse_c(self) -> float:
        return self.conf

    def summary(self) -> dict:
        return {
            "offset": self.offset,
            "lse_c": round(float(self.conf), 6),
            "lse_d": round(float(self.minval), 6),
            "frames": self.n_frames,
            "windows": self.n_windows,
            "audio_samples": self.n_samples,
        }


FrameSource = np.ndarray | Sequence[str | Path]  # [T, 224, 224, 3] BGR uint8, or JPEG files read on demand


def _frames(source: FrameSource, start: int, stop: int, resize: bool) -> np.ndarray:
    if isinstance(source, np.ndarray):
        block = source[start:stop]
    else:
        block = np.stack([read_image(p, resize) for p in source[start:stop]])
    if block.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
        raise InputError(f"SyncNet needs 224x224 BGR frames, got {block.shape[1:]}")
    return block


def read_image(path: str | Path, resize: bool = False) -> np.ndarray:
    """``cv2.imread`` of one frame (BGR uint8); with ``resize``, ``cv2.resize`` to 224x224 (bilinear) as Wav2Lip's
    and LatentSync's copies of ``evaluate`` do for other sizes."""
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise InputError(f"frame '{path}' cannot be read")
    if resize and image.shape[:2] != (CROP_SIZE, CROP_SIZE):
        image = cv2.resize(image, (CROP_SIZE, CROP_SIZE))
    return image


@torch.no_grad()
def embed(
    net, frames: FrameSource, mfccs: np.ndarray, n_windows: int, batch_size: int = BATCH_SIZE, resize: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Lip and audio embeddings of windows 0..n_windows-1, ``batch_size`` windows per forward pass."""
    device = next(net.parameters()).device
    cct = torch.from_numpy(mfccs.astype(np.float32))  # [13, n_mfcc]: the official ``cct`` without its two unit dims
    im_feat, cc_feat = [], []
    for start in range(0, n_windows, batch_size):
        stop = min(n_windows, start + batch_size)
        block = _frames(frames, start, stop + WINDOW_FRAMES - 1, resize)  # [B + 4, H, W, 3]
        clips = np.lib.stride_tricks.sliding_window_view(block, WINDOW_FRAMES, axis=0)  # [B, H, W, 3, 5]
        lips = torch.from_numpy(np.ascontiguousarray(clips.transpose(0, 3, 4, 1, 2), dtype=np.float32))
        audio = torch.stack(
            [cct[:, MFCC_PER_FRAME * v : MFCC_PER_FRAME * v + MFCC_WINDOW] for v in range(start, stop)]
        ).unsqueeze(1)  # [B, 1, 13, 20]
        im_feat.append(net.forward_lip(lips.to(device)).float().cpu())
        cc_feat.append(net.forward_aud(audio.to(device)).float().cpu())
    return torch.cat(im_feat).numpy(), torch.cat(cc_feat).numpy()


def distances(im_feat: np.ndarray, cc_feat: np.ndarray, vshift: int = VSHIFT) -> np.ndarray:
    """``[n, 2 * vshift + 1]`` float32: ``dists[i, k] = || im[i] - cc_pad[i + k] + 1e-6 ||`` (``calc_pdist``)."""
    im = torch.from_numpy(np.asarray(im_feat, np.float32))
    cc = F.pad(torch.from_numpy(np.asarray(cc_feat, np.float32)), (0, 0, vshift, vshift))
    n, width = im.shape[0], 2 * vshift + 1
    index = torch.arange(n)[:, None] + torch.arange(width)[None, :]
    pairs = F.pairwise_distance(im[:, None, :].expand(-1, width, -1).reshape(n * width, -1), cc[index.ravel()])
    return pairs.reshape(n, width).numpy()


def summarise(
    dists: np.ndarray, vshift: int = VSHIFT
) -> tuple[np.ndarray, float, int, float, float, np.ndarray, np.ndarray, np.ndarray]:
    """``(mdist, minval, minidx, median, conf, fdist, fconf, fconfm)`` from the distance table, in float32 torch
    arithmetic as the official code (``torch.median`` is the lower median)."""
    from scipy.signal import medfilt

    table = torch.from_numpy(np.ascontiguousarray(dists.T))  # [offsets, windows], the official stacking
    mdist = torch.mean(table, 1)
    minval, minidx = torch.min(mdist, 0)
    median = torch.median(mdist)
    conf = median - minval
    fdist = dists[:, int(minidx)]
    fconf = median.numpy() - fdist
    with warnings.catch_warnings():  # fewer than 9 windows: scipy warns about the zero padding it then applies
        warnings.simplefilter("ignore", UserWarning)
        fconfm = medfilt(fconf, kernel_size=9)
    return mdist.numpy(), float(minval), int(minidx), float(median), float(conf), fdist, fconf, fconfm


def evaluate(
    frames: FrameSource,
    audio: np.ndarray,
    net,
    *,
    vshift: int = VSHIFT,
    batch_size: int = BATCH_SIZE,
    resize: bool = False,
    name: str = "clip",
) -> SyncEvaluation:
    """Steps 3-5 of the protocol on decoded frames (BGR 224x224, 25 fps) and 16 kHz int16 samples.

    Raises:
        InputError: fewer than 6 usable frames (the official code needs one full 5-frame window plus one).
    """
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0:
        raise InputError(f"{name}: no audio samples")
    n_frames = len(frames)
    min_length = min(n_frames, audio.size // SAMPLES_PER_FRAME)
    n_windows = min_length - WINDOW_FRAMES
    if n_windows < 1:
        raise InputError(
            f"{name}: too short to score ({n_frames} frames, {audio.size / SAMPLE_RATE:.2f} s of sound); SyncNet needs "
            f"at least {WINDOW_FRAMES + 1} frames (0.24 s) of both"
        )
    features = mfcc(audio)
    im_feat, cc_feat = embed(net, frames, features, n_windows, batch_size, resize)
    dists = distances(im_feat, cc_feat, vshift)
    mdist, minval, minidx, median, conf, fdist, fconf, fconfm = summarise(dists, vshift)
    notes = []
    if abs(audio.size / SAMPLE_RATE - n_frames / FPS) > 1 / FPS:
        notes.append(f"audio ({audio.size / SAMPLE_RATE:.2f} s) and video ({n_frames / FPS:.2f} s) lengths differ")
    return SyncEvaluation(
        n_frames,
        int(audio.size),
        min_length,
        n_windows,
        features,
        im_feat,
        cc_feat,
        dists,
        mdist,
        minval,
        conf,
        minidx,
        vshift - minidx,
        median,
        fdist,
        fconf,
        fconfm,
        vshift,
        notes,
    )


# -- clip files -------------------------------------------------------------------------------------------------


def ffmpeg_path(path: str | Path) -> str:
    """A path as ffmpeg must be given it: with the ``file:`` protocol, so that names with colons stay file names."""
    return f"file:{Path(path)}"


def dump_frames(clip: str | Path, out_dir: str | Path, quality: int | None = None) -> list[Path]:
    """Every frame of ``clip`` as JPEG files ``000001.jpg``... (ffmpeg's default quality unless ``quality``)."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    args = ["-y", "-i", ffmpeg_path(clip)]
    if quality is not None:
        args += ["-qscale:v", str(quality)]
    run_ffmpeg(
        [*args, "-threads", "1", "-f", "image2", ffmpeg_path(out / "%06d.jpg")], what=f"reading frames of '{clip}'"
    )
    return sorted(out.glob("*.jpg"))


def extract_audio(source: str | Path, wav: str | Path, info: MediaInfo | None = None) -> np.ndarray:
    """The sound track of ``source`` as 16 kHz mono int16 (the official ``-async 1 -ac 1 ... pcm_s16le`` wav).

    Raises:
        InputError: ``source`` has no audio stream.
    """
    from scipy.io import wavfile

    info = info or probe(source, "audio")
    if info.audio is None:
        raise InputError(f"'{source}' has no sound track, so lip sync cannot be measured; give a file with sound")
    args = ["-y", "-i", ffmpeg_path(source), "-async", "1", "-ac", "1", "-vn", "-acodec", "pcm_s16le"]
    run_ffmpeg([*args, "-ar", str(SAMPLE_RATE), ffmpeg_path(wav)], what=f"extracting the sound of '{source}'")
    rate, samples = wavfile.read(str(wav))
    if rate != SAMPLE_RATE or samples.dtype != np.int16:
        raise InputError(f"'{source}': unexpected audio after conversion ({rate} Hz, {samples.dtype})")
    if samples.ndim > 1:
        samples = samples[:, 0]
    if samples.size == 0:
        raise InputError(f"'{source}' has a sound track with no samples")
    return samples


def evaluate_clip(
    clip: str | Path,
    net,
    work_dir: str | Path,
    *,
    audio: str | Path | None = None,
    vshift: int = VSHIFT,
    batch_size: int = BATCH_SIZE,
) -> SyncEvaluation:
    """The whole protocol on one face-track clip: JPEG frame dump, audio extraction, `evaluate`.

    ``audio`` replaces the clip's own sound track. Frames that are not 224x224 are resized after reading (bilinear,
    as Wav2Lip's and LatentSync's scripts do); the official script would fail on them.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    info = probe(clip, "video")
    if info.video is None:
        raise InputError(f"'{clip}' has no video stream")
    samples = extract_audio(audio or clip, work / "audio.wav", None if audio else info)
    jpgs = dump_frames(clip, work / "frames")
    if not jpgs:
        raise InputError(f"'{clip}' has no decodable frames")
    first = read_image(jpgs[0])
    resize = first.shape[:2] != (CROP_SIZE, CROP_SIZE)
    result = evaluate(jpgs, samples, net, vshift=vshift, batch_size=batch_size, resize=resize, name=f"'{clip}'")
    if resize:
        result.notes.append(f"frames of {first.shape[1]}x{first.shape[0]} resized to 224x224 (bilinear)")
    return result
