"""Streaming video frames in and out.

`SourceFrames` yields the frames of the edited video's timeline, decoded by ffmpeg at 25 fps and never
held in memory all at once. When the voice track is longer than the video the official pipeline plays the
video forwards and backwards (see `joygen.timeline`); for that the frames already decoded are spilled to a
raw file in the run's work directory and read back from there. A still image is a video of one frame.

`VideoWriter` takes RGB frames and writes the one final H.264 (yuv420p, BT.709) + AAC mp4, muxing the
user's original voice track, in a single ffmpeg pass.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import FFmpegError, InputError
from .files import work_folder_error
from .media import MediaInfo, ffmpeg_exe, ffmpeg_path
from .timeline import FPS, source_frame_index


def load_still_image(path: str | Path) -> np.ndarray:
    """Read a picture as ``(H, W, 3)`` uint8 RGB, applying its EXIF orientation."""
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy()
    except (OSError, ValueError) as exc:
        raise InputError(f"image '{path}' cannot be read: {exc}") from exc


class _SpillFile:
    """Decoded frames appended to a raw file, read back by index (for ping-pong playback)."""

    def __init__(self, work_dir: Path, shape: tuple[int, int, int]):
        self.shape = shape
        self.nbytes = int(np.prod(shape))
        fd, self.path = tempfile.mkstemp(prefix="frames-", suffix=".rgb", dir=work_dir)
        self._fd = fd
        self.count = 0

    def append(self, frame: np.ndarray) -> None:
        try:
            os.pwrite(self._fd, np.ascontiguousarray(frame).tobytes(), self.count * self.nbytes)
        except OSError as exc:
            raise work_folder_error(exc, Path(self.path).parent) from None
        self.count += 1

    def read(self, index: int) -> np.ndarray:
        buf = os.pread(self._fd, self.nbytes, index * self.nbytes)
        return np.frombuffer(buf, np.uint8).reshape(self.shape).copy()

    def close(self) -> None:
        os.close(self._fd)
        Path(self.path).unlink(missing_ok=True)


class SourceFrames:
    """The source frames of an edit, in timeline order.

    Args:
        info: `probe` result of the video (or still image).
        work_dir: the run's private folder; a spill file may be written there.

    Iterating `frames(num_frames)` yields ``(source_index, frame)`` with ``frame`` an ``(H, W, 3)`` uint8
    RGB array, for output frames ``0 .. num_frames - 1``.
    """

    def __init__(self, info: MediaInfo, work_dir: str | Path):
        if info.video is None:
            raise InputError(f"video file '{info.path}' has no video stream (only {', '.join(info.streams)})")
        self.info = info
        self.work_dir = Path(work_dir)
        self.width, self.height = info.video.width, info.video.height
        self.num_source_frames: int | None = None  # known once the decoder reached the end

    def decode(self) -> Iterator[np.ndarray]:
        """Every frame of the video once, in order, at 25 fps (no timeline, no ping-pong)."""
        return self._decode()

    def _decode(self) -> Iterator[np.ndarray]:
        if self.info.still_image:
            frame = load_still_image(self.info.path)
            self.height, self.width = frame.shape[:2]
            yield frame
            return
        w, h = self.width, self.height
        cmd = [ffmpeg_exe(), *"-nostdin -hide_banner -loglevel error -i".split(), ffmpeg_path(self.info.path)]
        cmd += ["-map", f"0:{self.info.video.index}", *f"-an -sn -vf fps={FPS} -f rawvideo -pix_fmt rgb24 -".split()]
        with tempfile.TemporaryFile(dir=self.work_dir) as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, bufsize=0)
            nbytes = w * h * 3
            produced = 0
            try:
                while True:
                    buf = bytearray(nbytes)
                    view, got = memoryview(buf), 0
                    while got < nbytes:
                        n = proc.stdout.readinto(view[got:])
                        if not n:
                            break
                        got += n
                    if got < nbytes:
                        break
                    produced += 1
                    yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            finally:
                proc.stdout.close()
                if proc.poll() is None:
                    proc.kill()
                code = proc.wait()
            if produced == 0:
                err.seek(0)
                msg = err.read().decode(errors="replace").strip()[-400:]
                raise InputError(f"video file '{self.info.path}' has no decodable frames ({msg or code})")

    def frames(self, num_frames: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(source_index, frame)`` for each of the ``num_frames`` output frames."""
        estimate = self.info.estimated_frames
        spill = None
        if estimate is None or estimate < num_frames + 2:  # the video may run out: keep what is decoded
            spill = _SpillFile(self.work_dir, (self.height, self.width, 3))
        try:
            decoded = 0
            for frame in self._decode():
                if decoded == num_frames:
                    break
                if spill is not None:
                    if spill.shape != frame.shape:  # a still image's true size is known only now
                        spill.shape, spill.nbytes = frame.shape, frame.nbytes
                    spill.append(frame)
                yield decoded, frame
                decoded += 1
            if decoded == num_frames:
                return
            self.num_source_frames = decoded
            if spill is None:  # the duration overstated the frames: decode once more, into a spill file
                spill = _SpillFile(self.work_dir, (self.height, self.width, 3))
                for frame in self._decode():
                    spill.append(frame)
            for i in range(decoded, num_frames):
                src = source_frame_index(i, spill.count)
                yield src, spill.read(src)
        finally:
            if spill is not None:
                spill.close()


class VideoWriter:
    """Encode RGB frames to the final H.264 + AAC mp4 in one ffmpeg pass.

    Args:
        path: output file (written in full before the caller moves it into place).
        width, height: frame size in px. Odd sizes are padded by one edge pixel (yuv420p needs even sizes).
        audio_path: file whose first audio stream becomes the sound track (re-encoded to AAC).
        audio_stream: index of that stream inside ``audio_path``.
        crf, preset: x264 quality and speed.
        audio_bitrate: AAC bitrate, e.g. "192k".
        lossless: RGB H.264 at crf 0 (libx264rgb): the decoded frames equal the written ones exactly.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        *,
        audio_path: str | Path | None,
        audio_stream: int = 0,
        fps: int = FPS,
        crf: int = 18,
        preset: str = "medium",
        audio_bitrate: str = "192k",
        lossless: bool = False,
        log_dir: str | Path | None = None,
    ):
        self.path = Path(path)
        self.size = (width, height)
        self.pad = (width % 2, height % 2) if not lossless else (0, 0)
        w, h = width + self.pad[0], height + self.pad[1]
        # Constant options are written as strings and split; file names are always separate arguments.
        cmd = [ffmpeg_exe(), *"-nostdin -hide_banner -loglevel error -y".split()]
        cmd += [*"-f rawvideo -pix_fmt rgb24 -s".split(), f"{w}x{h}", "-r", str(fps), "-i", "-"]
        if audio_path is not None:
            cmd += ["-i", ffmpeg_path(audio_path), *"-map 0:v:0 -map".split(), f"1:{audio_stream}"]
            cmd += [*"-c:a aac -b:a".split(), audio_bitrate]
        if lossless:
            cmd += [*"-c:v libx264rgb -crf 0 -pix_fmt rgb24 -preset".split(), preset]
        else:
            cmd += [*"-vf scale=out_color_matrix=bt709:out_range=tv,format=yuv420p".split()]
            cmd += [*"-c:v libx264 -pix_fmt yuv420p -preset".split(), preset, "-crf", str(crf)]
            cmd += "-colorspace bt709 -color_primaries bt709 -color_trc bt709".split()
        cmd += ["-movflags", "+faststart", ffmpeg_path(self.path)]
        self._err = tempfile.TemporaryFile(dir=log_dir)
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._err)
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame."""
        if frame.shape[1::-1] != self.size:
            raise ValueError(f"frame of size {frame.shape[1]}x{frame.shape[0]} given to a {self.size} writer")
        if any(self.pad):
            frame = np.pad(frame, ((0, self.pad[1]), (0, self.pad[0]), (0, 0)), mode="edge")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        except (BrokenPipeError, OSError) as exc:
            self._proc.wait()
            raise FFmpegError(
                self._failure("the video encoder stopped", self._stderr_tail(), self._proc.returncode)
            ) from exc
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file; raise `FFmpegError` if ffmpeg failed."""
        with contextlib.suppress(OSError):  # ffmpeg may already be gone; its exit code says why
            self._proc.stdin.close()
        code = self._proc.wait()
        tail = self._stderr_tail()
        self._err.close()
        if code != 0:
            raise FFmpegError(self._failure(f"encoding '{self.path.name}' failed", tail, code))

    def abort(self) -> None:
        """Stop ffmpeg and delete the partial file."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._err.close()
        self.path.unlink(missing_ok=True)

    def _failure(self, what: str, tail: str, code: int | None) -> str:
        """The message of a failed encode; a full disk is said in words (ffmpeg exits with 256 - ENOSPC)."""
        if "No space left on device" in tail or code == 256 - errno.ENOSPC:
            return f"{what}: {work_folder_error(OSError(errno.ENOSPC, ''), self.path.parent)}"
        return f"{what}: {tail or f'exit code {code}'}"

    def _stderr_tail(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace").strip()[-600:]


_DONE = object()


def prefetch(iterable, depth: int = 16):
    """Run ``iterable`` in a background thread, ``depth`` items ahead (decoding overlaps the models).

    Exceptions are re-raised in the consumer; closing the generator stops the producer.
    """
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(exc)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None and stop.is_set():
                close()

    thread = threading.Thread(target=produce, daemon=True, name="joygen-decode")
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class ThreadedWriter:
    """A `VideoWriter` fed from a background thread (encoding overlaps the models), same interface."""

    def __init__(self, writer: VideoWriter, depth: int = 16):
        import queue
        import threading

        self.writer = writer
        self.size, self.path = writer.size, writer.path
        self._items: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="joygen-encode")
        self._thread.start()

    def _run(self) -> None:
        while True:
            frame = self._items.get()
            if frame is _DONE:
                return
            if self._error is None:
                try:
                    self.writer.write(frame)
                except BaseException as exc:  # noqa: BLE001 - re-raised by write() / close()
                    self._error = exc

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._items.put(frame)

    def close(self) -> None:
        self._items.put(_DONE)
        self._thread.join()
        if self._error is not None:
            self.writer.abort()
            raise self._error
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()  # stops ffmpeg first: writes still queued fail fast and are dropped
        self._items.put(_DONE)
        self._thread.join()


@contextmanager
def decoded(source: SourceFrames, num_frames: int, timer):
    """``(index, (source index, frame))`` of the timeline, decoded in a background thread; ``timer``
    (a `joygen.report.StageTimer`) is charged the time the caller waits for frames."""
    frames = source.frames(num_frames)
    ahead = prefetch(enumerate(frames))
    try:
        yield timer.iterate("video_decode", ahead)
    finally:
        ahead.close()
        frames.close()
