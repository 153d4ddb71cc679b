"""`JoyGenPipeline`: a talking-face video and a voice track in, the same video with the mouth re-drawn out.

    pipe = JoyGenPipeline.from_pretrained("checkpoints", device="cuda")
    result = pipe("talk.mp4", "voice.wav", "edited.mp4", report="report.json")

The CLI (`python -m joygen edit`) and the Gradio app are thin layers over this class and share its
`PipelineConfig`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from .config import PipelineConfig
from .editor.face_parsing import FaceParser
from .editor.mouth_editor import FACE_SIZE, MouthEditor
from .editor.paste_back import EditFader, context_box, crop_padded, paste_back, side_by_side_frame
from .editor.whisper import WhisperFeatures, WhisperStream
from .errors import Cancelled, ConfigError, InputError, NoFaceError, WeightsError
from .face3d.bfm import OUTER_LIP_468
from .face3d.detection import Face, FaceDetector
from .face3d.dwpose import DWPose
from .face3d.mouth_depth import MouthDepth, MouthDepthResult
from .face3d.mtcnn import MTCNN
from .files import check_output, place_file, sha256_of, work_folder_error, write_text
from .media import MediaInfo, load_audio, probe
from .motion.audio_to_motion import AudioToMotion, Motion, lip_trajectory, loudness
from .report import Progress, ProgressCallback, StageTimer, now_iso, versions
from .timeline import FPS, Timeline
from .video import SourceFrames, ThreadedWriter, VideoWriter, prefetch
from .video_cache import FrameWork, VideoCache, default_cache_dir
from .weights.locator import (
    DEPTH_ARTIFACTS,
    EDITOR_ARTIFACTS,
    LANDMARK_ARTIFACTS,
    MOTION_ARTIFACTS,
    WeightSet,
    WeightsLocator,
    file_sha256,
)

PreviewCallback = Callable[[str, object], None]  # (kind, data): "trajectory" dict, "depth" list of previews
TINY_WARNING = "tiny random weights: this output is meaningless (a smoke test of the code paths)"
NO_DEPTH_HINT = "or run without the 3D stage: `--no-depth` (the official 'no depth' mode)"
MAX_PREVIEWS = 8  # depth previews kept in the output, spread over the clip
SIDE_BY_SIDE_HEIGHT = 720  # px; the side-by-side video is scaled down to at most this height
CPU_WORKERS = min(8, os.cpu_count() or 1)  # threads for per-frame image work (alignment, warps, blending)


@dataclass
class DepthPreview:
    frame: int  # output frame number
    face: np.ndarray  # (256, 256, 3) uint8 RGB face crop
    depth: np.ndarray  # (256, 256, 3) uint8 depth image the editor received


class FrameLog:
    """What happened to each output frame, kept compact (arrays, not per-frame objects) for long clips."""

    BOX_SOURCES = ("none", "mtcnn", "landmarks")  # what cropped each frame's face (none: no face)

    def __init__(self, n: int, keep_faces: bool, with_3d: bool):
        self.no_face: list[int] = []
        self.box_source = np.zeros(n, np.int8)  # index into BOX_SOURCES
        self.faces: list[dict] | None = [] if keep_faces else None  # faces.json, only for --intermediates
        self.lips = np.full((n, len(OUTER_LIP_468), 2), np.nan, np.float32) if with_3d else None
        self.jaw = np.full((n, 17, 2), np.nan, np.float32) if with_3d else None

    def add(self, indices, sources, works, todo, depths) -> None:
        for i, src, w in zip(indices, sources, works):
            if w.face is None:
                self.no_face.append(i)
            else:
                self.box_source[i] = self.BOX_SOURCES.index(w.face.box_source)
            if self.faces is not None:
                self.faces.append({"frame": i, "source_frame": src, "face": w.face.to_dict() if w.face else None})
        if self.lips is not None:
            for j, k in enumerate(todo[: len(depths)]):
                d, box = depths[j], works[k].face.box
                self.lips[indices[k]] = d.landmarks468[list(OUTER_LIP_468)] + box[:2]
                self.jaw[indices[k]] = d.landmarks68[:17]

    def box_sources(self) -> dict:
        """Which box cropped each frame: counts, and runs ``[first, last, source]`` of consecutive frames."""
        runs, start = [], 0
        src = self.box_source
        for i in range(1, len(src) + 1):
            if i == len(src) or src[i] != src[start]:
                runs.append([start, i - 1, self.BOX_SOURCES[src[start]]])
                start = i
        counts = {name: int((src == k).sum()) for k, name in enumerate(self.BOX_SOURCES)}
        return {"counts": counts, "runs": runs}

    def trajectory(self) -> dict:
        """Per-frame lip (20 outer-lip points) and jaw (17 points) positions of the edited mesh, frame px."""
        return {"lips": self.lips, "jaw": self.jaw}


def face_crop(frame: np.ndarray, face: Face) -> np.ndarray:
    """The editor's input: the face box cut out (black past the frame) and resized to 256x256 (Lanczos)."""
    return cv2.resize(crop_padded(frame, face.crop_box), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LANCZOS4)


def context_crop(frame: np.ndarray, face: Face, expand: float) -> np.ndarray:
    """The square around the face that the paste-back parses."""
    return crop_padded(frame, context_box(face.crop_box, expand))


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return [None if v is None else v for v in np.where(np.isnan(value), None, np.round(value, 2)).tolist()]
    return value


@dataclass
class JoyGenOutput:
    """Result of one edit."""

    video: Path  # the edited mp4 (H.264 + AAC)
    num_frames: int  # frames of the edited video (25 fps)
    fps: int
    frames_without_face: list[int]  # output frames passed through unedited
    timings: dict[str, float]  # seconds per stage
    report: dict  # everything the JSON report holds
    depth: bool = False  # the editor was conditioned on mouth depth maps
    trajectory: dict | None = None  # per frame: loudness; with depth also the lip trajectory (see lip_trajectory)
    depth_previews: list[DepthPreview] = field(default_factory=list)  # a few frames, for display
    intermediates: Path | None = None  # folder of per-stage artifacts, when asked for
    tiny_weights: bool = False  # True: made with random test weights, meaningless
    warnings: list[str] = field(default_factory=list)


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
    for info, role in ((vinfo, "video"), (ainfo, "audio")):
        if limit and info.duration and not info.still_image and info.duration > limit + 0.5:
            raise InputError(
                f"{role} file '{info.path}' lasts {info.duration:.1f} s; the limit here is {limit:.0f} s. Cut it shorter"
            )
    return vinfo, ainfo


def required_artifacts(config: PipelineConfig) -> list[str]:
    """Weights a run with ``config`` needs."""
    names = list(EDITOR_ARTIFACTS)
    if config.face.landmark_box:
        names += LANDMARK_ARTIFACTS
    if config.editor.use_depth:
        names += [*MOTION_ARTIFACTS, *DEPTH_ARTIFACTS]
    return names


class JoyGenPipeline:
    """The three JoyGen stages over one video and one voice track.

    Build it with `from_pretrained`; call it with a video (or still image) and a voice track.

    Args:
        editor: VAE + UNet mouth editor.
        whisper: Whisper feature encoder.
        face_detector: face boxes and points per frame.
        face_parser: BiSeNet face masks for the paste-back.
        weights: where every model came from (for the report).
        config: default settings of every call.
        motion: stage 1 (audio -> expressions); None: the no-depth mode only.
        depth: stage 2 (mouth depth maps); None: the no-depth mode only.
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
        motion: AudioToMotion | None = None,
        depth: MouthDepth | None = None,
    ):
        self.editor = editor
        self.whisper = whisper
        self.face_detector = face_detector
        self.face_parser = face_parser
        self.weights = weights
        self.config = config or PipelineConfig()
        self.motion = motion
        self.depth = depth
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self._session = uuid.uuid4().hex  # names this instance's cache entries when its models are not files

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
        unet: str | Path | None = None,
    ) -> JoyGenPipeline:
        """Load every model the config needs.

        Args:
            weights_dir: local folder in joygen's layout (default ``$JOYGEN_WEIGHTS_DIR`` or ``checkpoints/``).
            repo_id, revision: a Hub repo in joygen's layout (default ``$JOYGEN_WEIGHTS_REPO``).
            device: where the models run.
            dtype: dtype of the UNet, VAE and Whisper (default: ``config.editor.dtype``, else float32 on CPU and
                float16 on CUDA).
            config: default settings, and the load-time ones (see `joygen.config.load_time_options`);
                ``use_depth=False`` loads no 3D / audio-to-motion models, ``landmark_box=False`` no DWPose.
            unet: a diffusers UNet folder to use instead of the weights' editor UNet (e.g. a training checkpoint).

        Raises:
            WeightsError: listing every missing file and how to supply it.
        """
        config = config or PipelineConfig()
        if dtype is None and config.editor.dtype is not None:
            dtype = getattr(torch, config.editor.dtype)
        locator = WeightsLocator(weights_dir, repo_id, revision)
        names = [n for n in required_artifacts(config) if not (unet and n == "unet")]
        try:
            weights = locator.resolve(names)
        except WeightsError as exc:
            if config.editor.use_depth and not all(locator.find(n) for n in EDITOR_ARTIFACTS):
                raise
            raise WeightsError(f"{exc}\n{NO_DEPTH_HINT if config.editor.use_depth else ''}".rstrip()) from None
        face = config.face
        mtcnn = MTCNN.from_pretrained(
            weights["mtcnn"].folder,
            min_face_size=face.min_face_size,
            thresholds=face.thresholds,
            factor=face.pyramid_factor,
        )
        dwpose = DWPose(weights["dwpose"].path("dw-ll_ucoco_384.onnx"), str(device)) if "dwpose" in weights else None
        motion = depth = None
        if config.editor.use_depth:
            motion = AudioToMotion.from_pretrained(weights["hubert"].folder, weights["audio2secc"].folder)
            depth = MouthDepth.from_pretrained(weights["face_recon"].path("epoch_20.pth"), weights["bfm"].folder)
        pipe = cls(
            editor=MouthEditor.from_pretrained(unet or weights["unet"].folder, weights["vae"].folder),
            whisper=WhisperFeatures.from_pretrained(weights["whisper"].folder),
            face_detector=FaceDetector(mtcnn, dwpose, face.iou_threshold),
            face_parser=FaceParser.from_pretrained(weights["face_parsing"].path("79999_iter.pth")),
            weights=weights,
            config=config,
            motion=motion,
            depth=depth,
        )
        return pipe.to(device, dtype)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> JoyGenPipeline:
        """Move the models. ``dtype`` applies to the UNet, VAE and Whisper (default: fp16 on CUDA).

        The pipeline's config records the dtype (``editor.dtype``, a load-time option).
        """
        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        self.config = self.config.with_options(dtype=str(dtype).removeprefix("torch."))
        self.editor.to(device, dtype)
        self.whisper.to(device, dtype)
        for module in (self.face_detector.mtcnn, self.face_parser, self.motion, self.depth):
            if module is not None:
                module.to(device)
        self.device, self.dtype = device, dtype
        return self

    @property
    def tiny_weights(self) -> bool:
        return self.weights.tiny

    @property
    def has_depth(self) -> bool:
        """Whether the 3D stage (and stage 1, which drives it) is loaded."""
        return self.motion is not None and self.depth is not None

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
        side_by_side: str | Path | None = None,
        progress: ProgressCallback | None = None,
        preview: PreviewCallback | None = None,
        show_progress: bool = False,
        cancel: threading.Event | None = None,
    ) -> JoyGenOutput:
        """Edit ``video`` so that its mouth follows ``audio``.

        Args:
            video: a talking-face video, or a still image (held for the length of the audio).
            audio: the new voice track (any format ffmpeg reads, or a video with sound).
            output: the mp4 to write (parent folders are created). Default: a new temporary folder.
            config: settings for this call (default: the pipeline's). Build it from ``pipe.config`` with
                ``with_options``: its load-time options must be the pipeline's.
            work_dir: private scratch folder (default: a new temporary one, deleted afterwards).
            report: write the JSON report (inputs, frame counts, timings, weights with sha256) here.
            intermediates: write per-stage artifacts here (faces.json, face crops, generated faces, depth
                maps, expressions.npy, lip_trajectory.json).
            side_by_side: also write this mp4: source | edited on the same timeline, with the new voice.
            progress: called with (stage, done, total) as work proceeds.
            preview: called with ("trajectory", dict) after stage 1 and ("depth", [DepthPreview]) once the
                first mouth depth maps exist, before the video is finished.
            show_progress: report progress on stderr.
            cancel: when this event is set, the run stops before its next batch of frames, removes what it
                wrote and raises `Cancelled`.

        Returns:
            `JoyGenOutput`.

        Raises:
            InputError: unusable inputs (the message names the file and what to change).
            NoFaceError: no frame shows a face.
            WeightsError: depth (or the landmark box) asked for but this pipeline was loaded without its models.
            ConfigError: a load-time option differs from the one the pipeline was loaded with.
            OutputError: an output path that is a folder or cannot be written (checked before any work).
            Cancelled: ``cancel`` was set.
        """
        cfg = config or self.config
        changed = cfg.load_time_differences(self.config)
        if changed:
            raise ConfigError(
                changed[0],
                f"{', '.join(changed)} {'is a load-time option' if len(changed) == 1 else 'are load-time options'}: "
                "set at JoyGenPipeline.from_pretrained(config=...) and fixed afterwards; build the call's config "
                "with pipe.config.with_options(...)",
            )
        use_depth = cfg.editor.use_depth
        if use_depth and not self.has_depth:
            raise WeightsError(f"this pipeline was loaded without the 3D stage; load it with depth on, {NO_DEPTH_HINT}")
        if cfg.face.landmark_box and self.face_detector.dwpose is None:
            raise WeightsError(
                "this pipeline was loaded without DWPose, which the landmark box needs; load it with "
                "landmark_box on, or turn it off for this call (landmark_box=False, `--no-landmark-box`)"
            )
        timer, bar = StageTimer(), Progress(progress, show_progress)
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
        for path, what in ((output, "output"), (side_by_side, "side-by-side video"), (report, "report")):
            if path is not None:
                check_output(path, what)  # before any work: a folder, no permission, ...

        # 2. Read the voice track and plan the timeline.
        with timer("audio_decode"):
            wav = load_audio(audio, info=ainfo)
        timeline = Timeline.from_samples(len(wav))
        if timeline.num_frames == 0:
            raise InputError(
                f"audio file '{audio}' holds only {timeline.audio_seconds:.3f} s of sound; at least 0.03 s is needed"
            )
        inter = Path(intermediates) if intermediates else None
        if inter is not None:
            for sub in ("face256", "generated256") + (("depth",) if use_depth else ()):
                (inter / sub).mkdir(parents=True, exist_ok=True)

        # 3. Audio features for the editor (Whisper, 50 Hz).
        bar("audio_features", 0, 1)
        with timer("audio_features"):
            features = self.whisper.stream(wav)  # windows are encoded as the frames reach them

        # 4. Audio to expression (stage 1), which drives the mouth depth.
        motion = None
        trajectory = {"fps": FPS, **{k: np.round(v, 3).tolist() for k, v in loudness(wav, timeline.num_frames).items()}}
        if use_depth:
            bar("audio_to_motion", 0, 1)
            with timer("audio_to_motion"):
                m = cfg.motion
                channels = load_audio(audio, mono=False, info=ainfo)
                motion = self.motion(channels, m.seed, m.temperature, m.mouth_amp, m.hubert_input)
                curves = lip_trajectory(self.depth.face_model, motion.expressions[: timeline.num_frames])
            trajectory.update({k: np.round(v, 4).tolist() for k, v in curves.items() if k != "time_s"})
        if preview:
            preview("trajectory", trajectory)

        # 5-8. Per batch of frames: faces (or the video cache), mouth depth, edit, paste back, fade, encode.
        own_work = work_dir is None
        work = Path(tempfile.mkdtemp(prefix="joygen-")) if own_work else Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
        with timer("video_cache"):
            cache = self._video_cache(video, cfg) if cfg.video.cache else None
        writer: ThreadedWriter | None = None
        sbs: ThreadedWriter | None = None
        fader = EditFader(cfg.face.crossfade_frames)
        n = timeline.num_frames
        log = FrameLog(n, intermediates is not None, use_depth)
        previews: list[DepthPreview] = []
        preview_at = set(np.linspace(0, n - 1, min(n, MAX_PREVIEWS)).round().astype(int).tolist())
        source = SourceFrames(vinfo, work)
        source_iter = source.frames(n)
        decoded = prefetch(enumerate(source_iter))
        pool = ThreadPoolExecutor(CPU_WORKERS, thread_name_prefix="joygen-cpu")
        try:
            for batch in _batches(timer.iterate("video_decode", decoded), cfg.editor.batch_size):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("the edit was cancelled")
                indices = [i for i, _ in batch]
                sources = [src for _, (src, _) in batch]
                frames = [frame for _, (_, frame) in batch]
                works = self._prepare(frames, sources, cfg, cache, timer, pool)
                todo = [k for k, w in enumerate(works) if w.face is not None]
                depths: list[MouthDepthResult] = []
                if use_depth and todo:
                    with timer("mouth_depth"):
                        depths = self.depth.render(
                            np.stack([works[k].coeffs for k in todo]),
                            [works[k].alignment for k in todo],
                            [works[k].face for k in todo],
                            motion.expressions[[indices[k] for k in todo]],
                            pool,
                        )
                edited, generated = self._edit_batch(indices, frames, works, todo, depths, features, cfg, timer, pool)
                if writer is None:
                    h, w = frames[0].shape[:2]
                    writer = ThreadedWriter(self._writer(work / "edited.mp4", w, h, audio, ainfo, cfg))
                    if side_by_side:
                        sh = min(h, SIDE_BY_SIDE_HEIGHT) // 2 * 2
                        sw = 2 * round(w * sh / h / 2) * 2
                        sbs = ThreadedWriter(self._writer(work / "side_by_side.mp4", sw, sh, audio, ainfo, cfg))
                with timer("video_encode"):
                    for frame, result in zip(frames, edited):
                        for src, ready in fader.push(frame, result):
                            writer.write(ready)
                            if sbs is not None:
                                sbs.write(side_by_side_frame(src, ready, sbs.size[1]))
                log.add(indices, sources, works, todo, depths)
                wanted = [j for j, k in enumerate(todo) if depths and indices[k] in preview_at]
                if wanted:
                    previews += [
                        DepthPreview(
                            indices[todo[j]], face_crop(frames[todo[j]], works[todo[j]].face), depths[j].depth256
                        )
                        for j in wanted
                    ]
                    if preview:
                        preview("depth", list(previews))
                if inter is not None:
                    with timer("intermediates"):
                        self._save_intermediates(inter, indices, frames, works, todo, generated, depths)
                bar("edit", indices[-1] + 1, n)
            if len(log.no_face) == n:
                raise NoFaceError(
                    f"no face found in any of the {n} frames of '{video}'; joygen needs a clearly visible, "
                    "roughly frontal face (at least 50 px wide)"
                )
            with timer("video_encode"):
                for src, ready in fader.flush():
                    writer.write(ready)
                    if sbs is not None:
                        sbs.write(side_by_side_frame(src, ready, sbs.size[1]))
                writer.close()
                if sbs is not None:
                    sbs.close()
            final = self._place_output(work / "edited.mp4", output, video)
            if sbs is not None:
                place_file(sbs.path, side_by_side, "side-by-side video")
        except BaseException as exc:
            for w in (writer, sbs):
                if w is not None:
                    w.abort()
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise work_folder_error(exc, work) from None
            raise
        finally:
            decoded.close()
            source_iter.close()
            pool.shutdown()
            if cache is not None:
                cache.flush()  # also after a failure: finished frames stay reusable
            bar.close()
            if own_work:
                shutil.rmtree(work, ignore_errors=True)
        no_face = log.no_face
        if use_depth:
            trajectory.update(log.trajectory())

        # 9. Report.
        if cache is not None and cache.problem:
            warnings.append(f"the per-video cache was not stored ({cache.problem}); the edit itself is complete")
        if no_face:
            warnings.append(f"{len(no_face)} of {n} frames show no face and were left unedited")
        result = JoyGenOutput(
            final,
            n,
            FPS,
            no_face,
            timer.rounded(),
            {},
            use_depth,
            trajectory,
            previews,
            inter,
            self.tiny_weights,
            warnings,
        )
        result.report = self._report(vinfo, ainfo, timeline, source, motion, result, cfg, time.perf_counter() - started)
        result.report["frames"]["box_source"] = log.box_sources()
        if report is not None:
            result.report["weights"] = self.weights.describe(with_hashes=True)
            write_text(report, json.dumps(result.report, indent=2) + "\n", "report")
        if inter is not None:
            (inter / "faces.json").write_text(json.dumps(log.faces, indent=1))
            (inter / "lip_trajectory.json").write_text(json.dumps({k: _jsonable(v) for k, v in trajectory.items()}))
            if motion is not None:
                np.save(inter / "expressions.npy", motion.expressions)
        bar("done", 1, 1)
        return result

    # -- steps ---------------------------------------------------------------------------------------

    def _prepare(
        self,
        frames: list[np.ndarray],
        sources: list[int],
        cfg: PipelineConfig,
        cache: VideoCache | None,
        timer: StageTimer,
        pool: ThreadPoolExecutor,
    ) -> list[FrameWork]:
        """The voice-independent work of each frame: from the video cache, or computed (and cached)."""
        need_coeffs = cfg.editor.use_depth
        works = [cache.get(src, need_coeffs) if cache is not None else None for src in sources]
        missing = [k for k, w in enumerate(works) if w is None]
        if not missing:
            return works
        with timer("face_detection"):
            faces = self.face_detector([frames[k] for k in missing], cfg.face.landmark_box, cfg.face.iou_threshold)
        for k, face in zip(missing, faces):
            works[k] = FrameWork(face)
        found = [k for k, face in zip(missing, faces) if face is not None]
        if found:
            found_frames, found_faces = [frames[k] for k in found], [works[k].face for k in found]
            with timer("crop"):
                crops = np.stack(list(pool.map(face_crop, found_frames, found_faces)))
                contexts = list(pool.map(context_crop, found_frames, found_faces, [cfg.blend.expand] * len(found)))
            with timer("reference_latents"):
                latents = self.editor.reference_latents(crops).float().cpu().numpy()
            with timer("face_parsing"):
                parsing = self.face_parser(contexts)
            for j, k in enumerate(found):
                works[k].latents, works[k].parsing = latents[j], parsing[j]
            if need_coeffs:
                with timer("reconstruction"):
                    coeffs, alignments = self.depth.coefficients(found_frames, found_faces, pool)
                for j, k in enumerate(found):
                    works[k].coeffs, works[k].alignment = coeffs[j], alignments[j]
        if cache is not None:
            for k in missing:
                cache.put(sources[k], works[k])
        return works

    def _edit_batch(
        self,
        indices: list[int],
        frames: list[np.ndarray],
        works: list[FrameWork],
        todo: list[int],
        depths: list[MouthDepthResult],
        features: WhisperStream,
        cfg: PipelineConfig,
        timer: StageTimer,
        pool: ThreadPoolExecutor,
    ) -> tuple[list[np.ndarray | None], np.ndarray | None]:
        """Re-draw the mouth of every frame in ``todo``; the others get None (pass-through).

        Returns:
            The edited frames (None = pass-through) and the generated 256 faces of ``todo``.
        """
        out: list[np.ndarray | None] = [None] * len(frames)
        if not todo:
            return out, None
        editor = self.editor
        with timer("generate"):
            reference = torch.from_numpy(np.stack([works[k].latents for k in todo])).to(editor.device, editor.dtype)
            depth = editor.depth_latents(np.stack([d.depth256 for d in depths]) if depths else None, len(todo))
            tokens = features.tokens([indices[k] for k in todo]).to(editor.device)
            generated = editor.decode(editor.generate(editor.assemble(reference, depth), tokens))
        b = cfg.blend

        def blend(j: int) -> np.ndarray:
            w = works[todo[j]]
            return paste_back(
                frames[todo[j]],
                generated[j],
                w.face.crop_box,
                w.parsing,
                expand=b.expand,
                upper_boundary_ratio=b.upper_boundary_ratio,
                feather=b.feather,
            )

        with timer("blend"):
            for j, frame in enumerate(pool.map(blend, range(len(todo)))):
                out[todo[j]] = frame
        return out, generated

    @staticmethod
    def _writer(path: Path, w: int, h: int, audio, ainfo: MediaInfo, cfg: PipelineConfig) -> VideoWriter:
        v = cfg.video
        return VideoWriter(
            path,
            w,
            h,
            audio_path=audio,
            audio_stream=ainfo.audio.index,
            fps=FPS,
            crf=v.crf,
            preset=v.preset,
            audio_bitrate=v.audio_bitrate,
            lossless=v.lossless,
            log_dir=path.parent,
        )

    @staticmethod
    def _save_intermediates(inter: Path, indices, frames, works, todo, generated, depths) -> None:
        for j, k in enumerate(todo):
            name = f"{indices[k]:06d}.png"
            cv2.imwrite(str(inter / "face256" / name), face_crop(frames[k], works[k].face)[..., ::-1])
            cv2.imwrite(str(inter / "generated256" / name), generated[j][..., ::-1])
            if depths:
                cv2.imwrite(str(inter / "depth" / name), depths[j].depth256[..., 0])

    def _video_cache(self, video, cfg: PipelineConfig) -> VideoCache:
        """The cache entry of this video under every setting and weight file that shapes the per-video work."""
        face = {k: v for k, v in dataclasses.asdict(cfg.face).items() if k != "crossfade_frames"}
        weights = {
            name: [file_sha256(p) for p in self.weights[name].files.values()]
            for name in ("mtcnn", "dwpose", "vae", "face_parsing", "face_recon", "bfm")
            if name in self.weights
        }
        fingerprint = {
            "fps": FPS,
            "face": face,
            "expand": cfg.blend.expand,
            "dtype": str(self.editor.dtype),
            "weights": weights or {"process": self._session},  # models not from files: this process only
        }
        root = cfg.video.cache_dir or default_cache_dir()
        return VideoCache(root, sha256_of(video), fingerprint)

    @staticmethod
    def _place_output(made: Path, output: Path | None, video: str | Path) -> Path:
        if output is None:
            folder = Path(tempfile.mkdtemp(prefix="joygen-out-"))
            output = folder / f"{Path(video).stem}_joygen.mp4"
        return place_file(made, output)

    def _report(
        self,
        vinfo: MediaInfo,
        ainfo: MediaInfo,
        timeline: Timeline,
        source: SourceFrames,
        motion: Motion | None,
        result: JoyGenOutput,
        cfg: PipelineConfig,
        total: float,
    ) -> dict:
        return {
            "created": now_iso(),
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
            "mode": {
                "depth": result.depth,
                "note": "mouth depth from the audio-driven 3D face"
                if result.depth
                else "no-depth mode: the depth condition is the latent of a black image",
                "expression_rows": None if motion is None else len(motion.expressions),
            },
            "config": cfg.to_dict(),
            "timings_s": result.timings,
            "total_s": round(total, 3),
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "tiny_weights": result.tiny_weights,
            "warnings": result.warnings,
            "weights": self.weights.describe(),
            "versions": versions(),
        }
