"""ffmpeg, probing and audio decoding.

joygen runs the ffmpeg binary that ships with the ``imageio-ffmpeg`` wheel (or the one named by the
``IMAGEIO_FFMPEG_EXE`` environment variable), always through argument lists, never through a shell: file
names with spaces, quotes or ``$(...)`` reach ffmpeg untouched, and every path goes through ffmpeg's ``file:``
protocol (`ffmpeg_path`), so a name with a colon is not taken for a protocol. Problems with a user's file become
`InputError` with the file name and what to do; ffmpeg failures carry the tail of ffmpeg's own message.
"""

from __future__ import annotations

import functools
import math
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import FFmpegError, InputError
from .timeline import FPS, SAMPLE_RATE

STILL_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
_IMAGE_FORMATS = re.compile(r"^(image2|\w+_pipe)$")  # ffmpeg demuxers of single pictures
_STDERR_TAIL = 600  # characters of ffmpeg's stderr quoted in an error


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (imageio-ffmpeg's bundled one unless IMAGEIO_FFMPEG_EXE says otherwise)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_path(path: str | Path) -> str:
    """``path`` as ffmpeg must be given it: through the ``file:`` protocol, so that no file name is read as
    something else (``clip:1.mp4`` would be the protocol "clip", ``-x.mp4`` an option)."""
    return "file:" + str(path)


@functools.cache
def ffmpeg_version() -> str:
    out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True, check=False).stdout
    return out.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" Copyright")[0].strip()


def run_ffmpeg(args: list[str], *, what: str, stdout: int | None = subprocess.DEVNULL) -> bytes:
    """Run ``ffmpeg args`` and return its stdout; raise `FFmpegError` naming ``what`` on failure."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", *args],
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
        raise FFmpegError(f"ffmpeg failed while {what}: {tail or f'exit code {proc.returncode}'}")
    return proc.stdout or b""


@dataclass(frozen=True)
class VideoStream:
    index: int  # stream number inside the file
    codec: str
    width: int  # displayed width in px (after rotation)
    height: int  # displayed height in px (after rotation)
    fps: float | None  # nominal frame rate, None when unknown
    rotation: int  # degrees of the display matrix, 0 when none


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    sample_rate: int | None  # Hz
    channels: str  # ffmpeg's channel layout name ("mono", "stereo", "5.1", ...)


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg says about a file, before decoding any of it."""

    path: str
    size_bytes: int
    container: str  # ffmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "wav", "png_pipe"
    duration: float | None  # seconds; None when the container does not say
    video: VideoStream | None = None  # first real video stream (cover art is ignored)
    audio: AudioStream | None = None  # first audio stream
    still_image: bool = False  # a single picture (png, jpg, ...) rather than a video
    streams: list[str] = field(default_factory=list)  # ffmpeg's one-line description of every stream

    @property
    def estimated_frames(self) -> int | None:
        """Frames at 25 fps implied by the duration (ffmpeg's fps conversion keeps about this many)."""
        if self.still_image:
            return 1
        return None if self.duration is None else max(1, round(self.duration * FPS))

    def to_dict(self) -> dict:
        return asdict(self)


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #0:(\d+)[^:]*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_SIZE = re.compile(r"(?:^|[ ,])(\d{1,5})x(\d{1,5})(?=[ ,\[]|$)")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_ROTATION = re.compile(r"(?:display ?matrix: rotation of|^\s*rotate\s*:)\s*(-?[\d.]+)", re.IGNORECASE)
_RATE = re.compile(r"(\d+) Hz")


def _parse_header(text: str, path: str, size: int) -> MediaInfo:
    head = re.search(r"Input #0, (.+?), from ", text)
    container = head.group(1) if head else "unknown"
    dur = _DURATION.search(text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else None
    video = audio = None
    streams = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        m = _STREAM.match(line)
        if not m:
            continue
        index, kind, desc = int(m.group(1)), m.group(2), m.group(3)
        streams.append(f"#{index} {kind}: {desc}")
        codec = desc.split(" ", 1)[0].rstrip(",")
        if kind == "Video" and video is None and "attached pic" not in desc:
            sz = _SIZE.search(desc)
            if not sz:
                continue
            fps = _FPS.search(desc)
            rate = float(fps.group(1)) * (1000 if fps and fps.group(2) else 1) if fps else None
            rotation = 0
            for follow in lines[n + 1 :]:  # metadata and side data of this stream
                if _STREAM.match(follow) or not follow.startswith("    "):
                    break
                r = _ROTATION.search(follow)
                if r:
                    rotation = int(round(float(r.group(1))))
            w, h = int(sz.group(1)), int(sz.group(2))
            if rotation % 180:
                w, h = h, w
            video = VideoStream(index, codec, w, h, rate, rotation)
        elif kind == "Audio" and audio is None:
            rate = _RATE.search(desc)
            parts = [p.strip() for p in desc.split(",")]
            channels = parts[2] if len(parts) > 2 else "unknown"
            audio = AudioStream(index, codec, int(rate.group(1)) if rate else None, channels)
    still = bool(_IMAGE_FORMATS.match(container)) and video is not None
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        duration = None
    return MediaInfo(path, size, container, duration, video, audio, still, streams)


def check_file(path: str | Path, role: str) -> Path:
    """Fail early and specifically if ``path`` cannot be a media file. ``role`` is "video" or "audio"."""
    p = Path(path)
    if not str(path):
        raise InputError(f"no {role} file was given")
    if not p.exists():
        raise InputError(f"{role} file '{p}' does not exist; check the path")
    if p.is_dir():
        raise InputError(f"{role} file '{p}' is a folder, not a file")
    if p.stat().st_size == 0:
        raise InputError(f"{role} file '{p}' is empty (0 bytes); the upload or copy may have failed")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise InputError(f"{role} file '{p}' cannot be read: {exc.strerror or exc}") from exc
    return p


def probe(path: str | Path, role: str = "media") -> MediaInfo:
    """Describe a media file with ``ffmpeg -i`` (streams, size, fps, rotation, duration).

    Raises:
        InputError: the file is missing, empty, or not something ffmpeg can read.
    """
    p = check_file(path, role)
    proc = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", ffmpeg_path(p)],
        capture_output=True,
        check=False,
    )
    text = proc.stderr.decode(errors="replace")
    if "Input #0" not in text:
        reason = [ln.strip() for ln in text.splitlines() if ln.strip() and "At least one output" not in ln]
        why = reason[-1] if reason else "ffmpeg cannot read it"
        raise InputError(
            f"{role} file '{p}' is not a readable video, image or audio file ({why}); "
            "give an mp4/mov/webm/mkv video, a png/jpg image, or a wav/mp3/m4a/ogg/flac audio file"
        )
    return _parse_header(text, str(p), p.stat().st_size)


def load_audio(path: str | Path, *, mono: bool = True, info: MediaInfo | None = None) -> np.ndarray:
    """Decode the first audio stream of ``path`` to 16 kHz float32 in [-1, 1).

    With ``mono=True`` ffmpeg mixes the channels (``-ac 1``), exactly as the official Whisper front end
    does; the result has shape ``(samples,)``. With ``mono=False`` the channels are kept, shape
    ``(samples, channels)`` (the official HuBERT front end reads channel 0 of this).

    Raises:
        InputError: no audio stream, or no samples at all.
    """
    info = info or probe(path, "audio")
    if info.audio is None:
        what = "a video with no sound track" if info.video is not None else "a file with no audio stream"
        raise InputError(
            f"audio file '{path}' is {what}; give a voice track (wav, mp3, m4a, ogg, flac, or a video that has sound)"
        )
    # Channel layouts ffmpeg does not name are mixed down to mono rather than guessed at.
    channels = 1 if mono else (_channel_count(info.audio.channels) or 1)
    args = ["-threads", "0", "-i", ffmpeg_path(path), "-map", f"0:{info.audio.index}", "-vn", "-f", "s16le"]
    if channels == 1:
        args += ["-ac", "1"]
    args += ["-acodec", "pcm_s16le", "-ar", str(SAMPLE_RATE), "-"]
    try:
        raw = run_ffmpeg(args, what=f"decoding the audio of '{path}'", stdout=None)
    except FFmpegError as exc:
        raise InputError(f"audio file '{path}' could not be decoded: {exc}") from exc
    samples = np.frombuffer(raw, np.int16)
    samples = samples[: samples.size - samples.size % channels].reshape(-1, channels)
    if samples.shape[0] == 0:
        raise InputError(f"audio file '{path}' decodes to no sound at all (0 samples)")
    if mono:
        samples = samples[:, 0]
    return samples.astype(np.float32) / 32768.0


def _channel_count(layout: str) -> int | None:
    named = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}
    layout = layout.split("(")[0].strip()
    if layout in named:
        return named[layout]
    m = re.match(r"(\d+) channels", layout)
    return int(m.group(1)) if m else None


def _check_length(info: MediaInfo, role: str, config) -> None:
    limit = config.video.max_seconds if config is not None else None
    if limit and info.duration and not info.still_image and info.duration > limit + 0.5:
        raise InputError(
            f"{role} file '{info.path}' lasts {info.duration:.1f} s; the limit here is {limit:.0f} s. Cut it shorter"
        )


def check_video(video: str | Path, config=None) -> MediaInfo:
    """Probe the face's file (a video or a still image) and fail early with a specific message.

    Raises:
        InputError: a missing, empty or unreadable file, one without pictures, or one over
            ``config.video.max_seconds`` (``config``: a `joygen.config.PipelineConfig`).
    """
    vinfo = probe(video, "video")
    if vinfo.video is None:
        kind = "an audio-only file" if vinfo.audio is not None else "a file without pictures"
        raise InputError(f"video file '{video}' is {kind}; give a video (mp4, mov, webm, ...) or an image")
    _check_length(vinfo, "video", config)
    return vinfo


def check_audio(audio: str | Path, config=None) -> MediaInfo:
    """Probe the voice's file (audio, or a video with sound) and fail early with a specific message.

    Raises:
        InputError: a missing, empty or unreadable file, one without sound, or one over
            ``config.video.max_seconds``.
    """
    ainfo = probe(audio, "audio")
    if ainfo.audio is None:
        what = "a video with no sound track" if ainfo.video is not None else "a file with no audio stream"
        raise InputError(
            f"audio file '{audio}' is {what}; give a voice track (wav, mp3, m4a, ogg, flac, or a video that has sound)"
        )
    _check_length(ainfo, "audio", config)
    return ainfo


def check_inputs(video: str | Path, audio: str | Path, config=None) -> tuple[MediaInfo, MediaInfo]:
    """Probe both files of an edit and fail early with a specific message; returns their `MediaInfo`.

    ``config``: a `joygen.config.PipelineConfig`, whose ``video.max_seconds`` limits both lengths.

    Raises:
        InputError: a missing, empty or unreadable file, a "video" without pictures, an "audio" without
            sound, or a file over ``config.video.max_seconds``.
    """
    vinfo = check_video(video, config)
    return vinfo, check_audio(audio, config)


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False
