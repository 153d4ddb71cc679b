"""`JoyGenPipeline`: a talking-face video and a voice track in, the same video with the mouth re-drawn out.

    pipe = JoyGenPipeline.from_pretrained("checkpoints", device="cuda")
    result = pipe("talk.mp4", "voice.wav", "edited.mp4", report="report.json")

The CLI (`python -m joygen edit`) and the Gradio app are thin layers over this class and share its
`PipelineConfig`.
"""

from __future__ import annotations

import datetime
import json
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from . import __version__
from .audio_features import WhisperFeatures, audio_tokens
from .blending import context_box, crop_padded, paste_back
from .config import PipelineConfig
from .editor import FACE_SIZE, MouthEditor
from .errors import InputError, NoFaceError
from .face_parsing import FaceParser
from .faces import Face, FaceDetector
from .media import MediaInfo, ffmpeg_version, load_audio, probe
from .mtcnn import MTCNN
from .timeline import FPS, Timeline
from .video import SourceFrames, VideoWriter
from .weights import EDITOR_ARTIFACTS, WeightSet, WeightsLocator

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total)
TINY_WARNING = "tiny random weights: this output is meaningless (a smoke test of the code paths)"


@dataclass
class JoyGenOutput:
    """Result of one edit."""

    video: Path  # the edited mp4 (H.264 + AAC)
    num_frames: int  # frames of the edited video (25 fps)
    fps: int
    frames_without_face: list[int]  # output frames passed through unedited
    timings: dict[str, float]  # seconds per stage
    report: dict  # everything the JSON report holds
    intermediates: Path | None = None  # folder of per-stage artifacts, when asked for
    tiny_weights: bool = False  # True: made with random test weights, meaningless
    warnings: list[str] = field(default_factory=list)


class StageTimer:
    """Accumulates wall-clock seconds per named stage."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def iterate(self, stage: str, iterable: Iterable):
        """Yield from ``iterable``, charging the time spent producing each item to ``stage``."""
        it = iter(iterable)
        while True:
            with self(stage):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item


class Progress:
    """Reports (stage, done, total) to a callback and, optionally, a tqdm bar on stderr."""

    def __init__(self, callback: ProgressCallback | None, show_bar: bool):
        self.callback = callback
        self.show_bar = show_bar
        self._bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.callback:
            self.callback(stage, done, total)
        if self.show_bar and stage == "edit":
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc="editing frames", unit="frame", file=sys.stderr)
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_inputs(video: str | Path, audio: str | Path, config: PipelineConfig | None = None):
    """Probe both files and fail early with a specific message; returns their `MediaInfo`.

    Raises:
        InputError: a missing, empty or unreadable file, a "video" without pictures, an "audio" without
            sound, or a voice track over ``config.video.max_seconds``.
    """
    config = config or PipelineConfig()
    vinfo = probe(video, "video")
    if vinfo.video is None:
        kind = "an audio-only file" if vinfo.audio is not None else "a file without pictures"
        raise InputError(f"video file '{video}' is {kind}; give a video (mp4, mov, webm, ...) or an image")
    ainfo = probe(audio, "audio")
    if ainfo.audio is None:
        what = "a video with no sound track" if ainfo.video is not None else "a file with no audio stream"
        raise InputError(
            f"audio file '{audio}' is {what}; give a voice track (wav, mp3, m4a, ogg, flac, or a video that has sound)"
        )
    limit = config.video.max_seconds
    if limit and ainfo.duration and ainfo.duration > limit + 0.5:
        raise InputError(
            f"audio file '{audio}' lasts {ainfo.duration:.1f} s; the limit here is {limit:.0f} s. Cut it shorter"
        )
    return vinfo, ainfo


class JoyGenPipeline:
    """The three JoyGen stages over one video and one voice track.

    Build it with `from_pretrained`; call it with a video (or still image) and a voice track.

    Args:
        editor: VAE + UNet mouth editor.
        whisper: Whisper feature encoder.
        face_detector: largest-face boxes per frame.
        face_parser: BiSeNet face masks for the paste-back.
        weights: where every model came from (for the report).
        config: default settings of every call.
    """

    def __init__(
        self,
        *,
        editor: MouthEditor,
        whisper: WhisperFeatures,
        face_detector: FaceDetector,
        face_parser: FaceParser,
        weights: WeightSet,
        config: PipelineConfig | None = None,
    ):
        self.editor = editor
        self.whisper = whisper
        self.face_detector = face_detector
        self.face_parser = face_parser
        self.weights = weights
        self.config = config or PipelineConfig()

    @classmethod
    def from_pretrained(
        cls,
        weights_dir: str | Path | None = None,
        *,
        repo_id: str | None = None,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        config: PipelineConfig | None = None,
    ) -> JoyGenPipeline:
        """Load every model.

        Args:
            weights_dir: local folder in joygen's layout (default ``$JOYGEN_WEIGHTS_DIR`` or ``checkpoints/``).
            repo_id, revision: a Hub repo in joygen's layout (default ``$JOYGEN_WEIGHTS_REPO``).
            device: where the models run.
            dtype: dtype of the UNet, VAE and Whisper (default float32 on CPU, float16 on CUDA).
            config: default settings.

        Raises:
            WeightsError: listing every missing file and how to supply it.
        """
        config = config or PipelineConfig()
        weights = WeightsLocator(weights_dir, repo_id, revision).resolve(EDITOR_ARTIFACTS)
        editor = MouthEditor.from_pretrained(weights["unet"].folder, weights["vae"].folder)
        whisper = WhisperFeatures.from_pretrained(weights["whisper"].folder)
        face = config.face
        mtcnn = MTCNN.from_pretrained(
            weights["mtcnn"].folder,
            min_face_size=face.min_face_size,
            thresholds=face.thresholds,
            factor=face.pyramid_factor,
        )
        parser = FaceParser.from_pretrained(weights["face_parsing"].path("79999_iter.pth"))
        pipe = cls(
            editor=editor,
            whisper=whisper,
            face_detector=FaceDetector(mtcnn),
            face_parser=parser,
            weights=weights,
            config=config,
        )
        return pipe.to(device, dtype)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> JoyGenPipeline:
        """Move the models. ``dtype`` applies to the UNet, VAE and Whisper (default: fp16 on CUDA)."""
        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        self.editor.to(device, dtype)
        self.whisper.to(device, dtype)
        self.face_detector.mtcnn.to(device)
        self.face_parser.to(device)
        self.device, self.dtype = device, dtype
        return self

    @property
    def tiny_weights(self) -> bool:
        return self.weights.tiny

    # -- one edit ----------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        video: str | Path,
        audio: str | Path,
        output: str | Path | None = None,
        *,
        config: PipelineConfig | None = None,
        work_dir: str | Path | None = None,
        report: str | Path | None = None,
        intermediates: str | Path | None = None,
        progress: ProgressCallback | None = None,
        show_progress: bool = False,
    ) -> JoyGenOutput:
        """Edit ``video`` so that its mouth follows ``audio``.

        Args:
            video: a talking-face video, or a still image (held for the length of the audio).
            audio: the new voice track (any format ffmpeg reads, or a video with sound).
            output: the mp4 to write (parent folders are created). Default: a new temporary folder.
            config: settings for this call (default: the pipeline's).
            work_dir: private scratch folder (default: a new temporary one, deleted afterwards).
            report: write the JSON report (inputs, frame counts, timings, weights with sha256) here.
            intermediates: write per-stage artifacts (face boxes, face crops, generated faces) here.
            progress: called with (stage, done, total) as work proceeds.
            show_progress: draw a progress bar on stderr.

        Returns:
            `JoyGenOutput`.

        Raises:
            InputError: unusable inputs (the message names the file and what to change).
            NoFaceError: no frame shows a face.
        """
        cfg = config or self.config
        timer = StageTimer()
        bar = Progress(progress, show_progress)
        warnings = [TINY_WARNING] if self.tiny_weights else []
        started = time.perf_counter()

        # 1. Check inputs.
        bar("probe", 0, 1)
        with timer("probe"):
            vinfo, ainfo = check_inputs(video, audio, cfg)
        output = Path(output) if output else None
        for given, name in ((video, "video"), (audio, "audio")):
            if output is not None and _same_file(output, Path(given)):
                raise InputError(f"the output '{output}' is the {name} file itself; choose another output path")

        # 2. Read the voice track and plan the timeline.
        with timer("audio_decode"):
            wav = load_audio(audio, info=ainfo)
        timeline = Timeline.from_samples(len(wav))
        if timeline.num_frames == 0:
            raise InputError(
                f"audio file '{audio}' holds only {timeline.audio_seconds:.3f} s of sound; "
                "at least 0.03 s is needed (one video frame)"
            )

        # 3. Audio features (Whisper, 50 Hz).
        bar("audio_features", 0, 1)
        with timer("audio_features"):
            features = self.whisper(wav)

        own_work = work_dir is None
        work = Path(tempfile.mkdtemp(prefix="joygen-")) if own_work else Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
        inter = Path(intermediates) if intermediates else None
        if inter is not None:
            for sub in ("face256", "generated256"):
                (inter / sub).mkdir(parents=True, exist_ok=True)
        writer: VideoWriter | None = None
        no_face: list[int] = []
        frame_log: list[dict] = []
        source = SourceFrames(vinfo, work)
        n = timeline.num_frames
        source_iter = source.frames(n)
        try:
            # 4-7. Per batch of frames: detect faces, edit the mouth, paste back, encode.
            for batch in _batches(timer.iterate("video_decode", enumerate(source_iter)), cfg.editor.batch_size):
                indices = [i for i, _ in batch]
                frames = [f for _, (_, f) in batch]
                with timer("face_detection"):
                    faces = self.face_detector(frames)
                edited = self._edit_batch(indices, frames, faces, features, cfg, timer, inter)
                if writer is None:
                    h, w = frames[0].shape[:2]
                    writer = VideoWriter(
                        work / "edited.mp4",
                        w,
                        h,
                        audio_path=audio,
                        audio_stream=ainfo.audio.index,
                        fps=FPS,
                        crf=cfg.video.crf,
                        preset=cfg.video.preset,
                        audio_bitrate=cfg.video.audio_bitrate,
                        log_dir=work,
                    )
                with timer("video_encode"):
                    for frame in edited:
                        writer.write(frame)
                for (i, (src, _)), face in zip(batch, faces):
                    if face is None:
                        no_face.append(i)
                    frame_log.append({"frame": i, "source_frame": src, "face": face.to_dict() if face else None})
                bar("edit", indices[-1] + 1, n)
            if len(no_face) == n:
                raise NoFaceError(
                    f"no face found in any of the {n} frames of '{video}'; joygen needs a clearly visible, "
                    "roughly frontal face (at least 50 px wide)"
                )
            with timer("video_encode"):
                writer.close()
            final = self._place_output(work / "edited.mp4", output, video)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            source_iter.close()
            bar.close()
            if own_work:
                shutil.rmtree(work, ignore_errors=True)

        if no_face:
            warnings.append(f"{len(no_face)} of {n} frames show no face and were left unedited")
        timings = {k: round(v, 4) for k, v in timer.seconds.items()}
        total = time.perf_counter() - started
        result = JoyGenOutput(final, n, FPS, no_face, timings, {}, inter, self.tiny_weights, warnings)
        result.report = self._report(vinfo, ainfo, timeline, source, result, cfg, total, hashes=report is not None)
        if inter is not None:
            (inter / "faces.json").write_text(json.dumps(frame_log, indent=1))
        if report is not None:
            Path(report).parent.mkdir(parents=True, exist_ok=True)
            Path(report).write_text(json.dumps(result.report, indent=2) + "\n")
        bar("done", 1, 1)
        return result

    def _edit_batch(
        self,
        indices: list[int],
        frames: list[np.ndarray],
        faces: list[Face | None],
        features: torch.Tensor,
        cfg: PipelineConfig,
        timer: StageTimer,
        inter: Path | None,
    ) -> list[np.ndarray]:
        """Re-draw the mouth of every frame that has a face; the others come back unchanged."""
        todo = [k for k, face in enumerate(faces) if face is not None]
        if not todo:
            return frames
        with timer("crop"):
            boxes = [faces[k].crop_box for k in todo]
            crops = np.stack(
                [
                    cv2.resize(crop_padded(frames[k], box), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LANCZOS4)
                    for k, box in zip(todo, boxes)
                ]
            )
        with timer("generate"):
            tokens = audio_tokens(features, [indices[k] for k in todo]).to(self.editor.device)
            generated = self.editor(crops, tokens)
        with timer("face_parsing"):
            parsing = self.face_parser(
                [crop_padded(frames[k], context_box(box, cfg.blend.expand)) for k, box in zip(todo, boxes)]
            )
        out = list(frames)
        with timer("blend"):
            for j, (k, box) in enumerate(zip(todo, boxes)):
                out[k] = paste_back(
                    frames[k],
                    generated[j],
                    box,
                    parsing[j],
                    expand=cfg.blend.expand,
                    upper_boundary_ratio=cfg.blend.upper_boundary_ratio,
                    feather=cfg.blend.feather,
                )
        if inter is not None:
            with timer("intermediates"):
                for j, k in enumerate(todo):
                    cv2.imwrite(str(inter / "face256" / f"{indices[k]:06d}.png"), crops[j][..., ::-1])
                    cv2.imwrite(str(inter / "generated256" / f"{indices[k]:06d}.png"), generated[j][..., ::-1])
        return out

    @staticmethod
    def _place_output(made: Path, output: Path | None, video: str | Path) -> Path:
        if output is None:
            folder = Path(tempfile.mkdtemp(prefix="joygen-out-"))
            output = folder / f"{Path(video).stem}_joygen.mp4"
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(made), str(output))
        return output

    def _report(
        self,
        vinfo: MediaInfo,
        ainfo: MediaInfo,
        timeline: Timeline,
        source: SourceFrames,
        result: JoyGenOutput,
        cfg: PipelineConfig,
        total: float,
        hashes: bool,
    ) -> dict:
        import diffusers
        import transformers

        return {
            "joygen": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "inputs": {"video": vinfo.to_dict(), "audio": ainfo.to_dict()},
            "output": {
                "path": str(result.video),
                "frames": result.num_frames,
                "fps": FPS,
                "seconds": round(result.num_frames / FPS, 3),
            },
            "frames": {
                "audio_samples_16k": timeline.num_samples,
                "expression_frames": timeline.expression_frames,
                "whisper_frames": timeline.whisper_frames,
                "audio_chunks": timeline.audio_chunks,
                "output_frames": timeline.num_frames,
                "source_frames": source.num_source_frames,  # None: the video was longer than needed
                "ping_pong": source.num_source_frames is not None,
                "frames_without_face": result.frames_without_face,
            },
            "mode": {"depth": False, "note": "no-depth mode: the depth condition is the latent of a black image"},
            "config": cfg.to_dict(),
            "timings_s": result.timings,
            "total_s": round(total, 3),
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "tiny_weights": result.tiny_weights,
            "warnings": result.warnings,
            "weights": self.weights.describe(with_hashes=hashes),
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
                "transformers": transformers.__version__,
                "numpy": np.__version__,
                "opencv": cv2.__version__,
                "ffmpeg": ffmpeg_version(),
                "platform": platform.platform(),
                "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            },
        }
