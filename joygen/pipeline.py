"""`JoyGenPipeline`: a talking-face video and a voice track in, the same video with the mouth re-drawn out.

    pipe = JoyGenPipeline.from_pretrained("checkpoints", device="cuda")
    result = pipe("talk.mp4", "voice.wav", "edited.mp4", report="report.json")

``__call__`` is the recipe, in the paper's order: the voice drives stage 1 (expressions), then every batch
of frames goes through the analysis, stage 2 (mouth depth), stage 3 (the editor) and the paste-back
(`joygen.frames`) and is written (`joygen.outputs`). The CLI (``python -m joygen edit``) and the Gradio app
are thin layers over this class and share its `PipelineConfig`.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .assemble import (
    NO_DEPTH_HINT,
    load_editor,
    load_face_detector,
    load_face_parser,
    load_motion,
    load_mouth_depth,
    load_vad,
    load_whisper,
    resolve_weights,
)
from .config import PipelineConfig
from .editor.face_parsing import FaceParser
from .editor.mouth_editor import MouthEditor
from .editor.whisper import WhisperFeatures
from .errors import ConfigError, InputError, WeightsError
from .face3d.detection import FaceDetector
from .face3d.mouth_depth import MouthDepth
from .files import check_output, work_folder, write_text
from .frames import Models, analyse, batches, generate, mouth_depth, paste
from .media import MediaInfo, check_inputs, load_audio, same_file
from .motion.audio_to_motion import AudioToMotion, Motion
from .outputs import (
    DepthPreview,
    EditWriter,
    FrameLog,
    Previews,
    check_some_face,
    intermediates_folder,
    save_intermediates,
    write_run_files,
)
from .report import TINY_WARNING, ProgressCallback, RunLog, build_report
from .stability import (
    SilencePlan,
    box_smoother,
    plan_silence,
    shape_expressions,
    stability_report,
)
from .timeline import FPS, Timeline
from .trajectory import run_trajectory
from .video import SourceFrames, decoded
from .video_cache import CACHED_WEIGHTS, default_cache_dir, fingerprint, open_entry
from .voice_activity import VoiceActivity, VoiceActivityDetector
from .weights.locator import WeightSet, WeightsLocator, file_sha256

# (kind, data): "trajectory" dict, "depth" list of DepthPreview, "frame" {"frame", "source", "edited"} (see __call__)
PreviewCallback = Callable[[str, object], None]
CPU_WORKERS = min(8, os.cpu_count() or 1)  # threads for per-frame image work (alignment, warps, blending)

__all__ = ["DepthPreview", "JoyGenOutput", "JoyGenPipeline", "check_inputs"]  # check_inputs: from media


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
    trajectory: dict | None = None  # per frame: loudness, voice_active; with depth the lip trajectory (_trajectory)
    depth_previews: list[DepthPreview] = field(default_factory=list)  # a few frames, for display
    intermediates: Path | None = None  # folder of per-stage artifacts, when asked for
    tiny_weights: bool = False  # True: made with random test weights, meaningless
    warnings: list[str] = field(default_factory=list)
    sync: dict | None = None  # lip sync (LSE-C, LSE-D) of the edit and the source, or how to add SyncNet


class JoyGenPipeline:
    """The three JoyGen stages over one video and one voice track.

    Build it with `from_pretrained`; call it with a video (or still image) and a voice track.

    Args:
        editor: VAE + UNet mouth editor (stage 3).
        whisper: Whisper feature encoder (stage 3's audio).
        face_detector: face boxes and points per frame.
        face_parser: BiSeNet face masks for the paste-back.
        weights: where every model came from (for the report).
        config: default settings of every call.
        motion: stage 1 (audio -> expressions); None: the no-depth mode only.
        depth: stage 2 (mouth depth maps); None: the no-depth mode only.
        vad: voice activity of the new voice; None: Silero VAD from wherever the weights locator finds it.
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
        vad: VoiceActivityDetector | None = None,
    ):
        self.editor = editor
        self.whisper = whisper
        self.face_detector = face_detector
        self.face_parser = face_parser
        self.weights = weights
        self.config = config or PipelineConfig()
        self.motion = motion
        self.depth = depth
        self.vad = vad if vad is not None else load_vad()
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
        weights = resolve_weights(WeightsLocator(weights_dir, repo_id, revision), config, unet)
        use_depth = config.editor.use_depth
        pipe = cls(
            editor=load_editor(weights, unet),
            whisper=load_whisper(weights),
            face_detector=load_face_detector(weights, config.face, str(device)),
            face_parser=load_face_parser(weights),
            weights=weights,
            config=config,
            motion=load_motion(weights) if use_depth else None,
            depth=load_mouth_depth(weights) if use_depth else None,
            vad=load_vad(weights),
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
            config: settings for this call (default: the pipeline's); build it with ``pipe.config.with_options``.
            work_dir: private scratch folder (default: a new temporary one, deleted afterwards).
            report: write the JSON report (inputs, frame counts, timings, weights with sha256) here.
            intermediates: write per-stage artifacts here (faces.json, crops, generated faces, depth maps,
                expressions.npy, lip_trajectory.json).
            side_by_side: also write this mp4: source | edited on the same timeline, with the new voice.
            progress: called with (stage, done, total) as work proceeds.
            preview: called with ("trajectory", dict) after stage 1, ("depth", [DepthPreview]) as depth maps exist
                and, at most once a second, ("frame", {"frame": index, "source": image, "edited": image or None,
                "kept": bool}) with the latest written frame (kept: its own mouth in a silence), before the video
                is finished.
            show_progress: report progress on stderr.
            cancel: once set, the run stops before its next batch, removes what it wrote, raises `Cancelled`.

        Raises:
            InputError, NoFaceError, OutputError: unusable inputs or outputs (checked before any work).
            WeightsError, ConfigError: settings this pipeline was not loaded for.
            Cancelled: ``cancel`` was set.
        """
        # 1. Check the settings, the inputs and the outputs, before any work.
        cfg = self._settings(config)
        run = RunLog(progress, show_progress, TINY_WARNING if self.tiny_weights else None, cancel)
        vinfo, ainfo = self._check(video, audio, output, side_by_side, report, cfg, run)
        # 2. Read the voice and plan the timeline from its length.
        wav, timeline = self._read_voice(audio, ainfo, run)
        n = timeline.num_frames
        # 3. Where the voice speaks, and what silence_mode does in its long silences.
        voice, plan = self._voice(wav, n, cfg, run)
        # 4. The voice for the editor: Whisper states, encoded as the frames reach them.
        run.bar("audio_features", 0, 1)
        with run.timer("audio_features"):
            features = self.whisper.stream(wav)
        # 5. Stage 1: the voice -> 64 expression coefficients per frame; smoothed and closed over silences
        #    (`joygen.stability`) they drive stage 2.
        motion = self._motion(audio, ainfo, cfg, run)
        expressions = self._expressions(motion, n, plan, cfg)
        face_model = self.depth.face_model if self.depth is not None else None
        trajectory = run_trajectory(face_model, wav, n, motion, expressions, voice.active)
        if preview:
            preview("trajectory", trajectory)
        inter = intermediates_folder(intermediates, cfg.editor.use_depth)
        log, previews = FrameLog(n, inter is not None, motion is not None), Previews(n)
        models = Models(self.face_detector, self.face_parser, self.editor, self.depth)
        with ExitStack() as stack:
            stack.callback(run.bar.close)
            work = stack.enter_context(work_folder(work_dir))
            pool = stack.enter_context(ThreadPoolExecutor(CPU_WORKERS, thread_name_prefix="joygen-cpu"))
            source = SourceFrames(vinfo, work)
            frames = stack.enter_context(decoded(source, n, run.timer))
            cache = stack.enter_context(self._video_cache(video, cfg, run))
            writer = stack.enter_context(EditWriter(work, audio, ainfo, cfg, side_by_side is not None))
            smoother = box_smoother(cfg.stability)
            run.bar("edit", 0, n)
            for batch in batches(frames, cfg.editor.batch_size, plan.keep):
                run.check_cancelled()
                # 6. Analyse each frame: face (box smoothed), crops, latents, face mask, 3D fit (or from the video
                #    cache); frames in long silences under keep-source keep their own mouth.
                analyse(batch, models, cfg, cache, run.timer, pool, smoother)
                # 7. Stage 2: each face's depth map with the expression of its frame.
                if motion is not None:
                    mouth_depth(batch, self.depth, expressions, run.timer, pool)
                # 8. Stage 3: the editor re-draws each lower face from its latents, depth and voice.
                generate(batch, self.editor, features, run.timer)
                # 9. Paste the new mouths back into the frames.
                paste(batch, cfg.blend, run.timer, pool)
                # 10. Write the frames; keep what the report, the previews and the intermediates need.
                self._write(batch, writer, log, previews, inter, preview, run)
            # 11. Finish the videos and put them in place, complete (none if no frame shows a face).
            check_some_face(log, source, vinfo, video, cfg)
            run.bar("encode", 0, 1)
            with run.timer("video_encode"):
                final = writer.finish(self._output_path(output, video), side_by_side)
        # 12. The report.
        return self._finish(
            final, vinfo, ainfo, timeline, source, motion, trajectory, log, previews, inter, report, cfg, run,
            voice=voice, plan=plan, expressions=expressions,
        )  # fmt: skip

    # -- the steps of a call ---------------------------------------------------------------------------

    def _settings(self, config: PipelineConfig | None) -> PipelineConfig:
        """The call's config, refused if it asks for what this pipeline was not loaded with."""
        cfg = config or self.config
        changed = cfg.load_time_differences(self.config)
        if changed:
            raise ConfigError(
                changed[0],
                f"{', '.join(changed)} {'is a load-time option' if len(changed) == 1 else 'are load-time options'}: "
                "set at JoyGenPipeline.from_pretrained(config=...) and fixed afterwards; build the call's config "
                "with pipe.config.with_options(...)",
            )
        if cfg.editor.use_depth and not self.has_depth:
            raise WeightsError(f"this pipeline was loaded without the 3D stage; load it with depth on, {NO_DEPTH_HINT}")
        if cfg.face.landmark_box and self.face_detector.dwpose is None:
            raise WeightsError(
                "this pipeline was loaded without DWPose, which the landmark box needs; load it with "
                "landmark_box on, or turn it off for this call (landmark_box=False, `--no-landmark-box`)"
            )
        return cfg

    @staticmethod
    def _check(video, audio, output, side_by_side, report, cfg: PipelineConfig, run: RunLog):
        run.bar("probe", 0, 1)
        with run.timer("probe"):
            vinfo, ainfo = check_inputs(video, audio, cfg)
        for given, name in ((video, "video"), (audio, "audio")):
            if output is not None and same_file(Path(output), Path(given)):
                raise InputError(f"the output '{output}' is the {name} file itself; choose another output path")
        for path, what in ((output, "output"), (side_by_side, "side-by-side video"), (report, "report")):
            if path is not None:
                check_output(path, what)
        return vinfo, ainfo

    @staticmethod
    def _read_voice(audio, ainfo: MediaInfo, run: RunLog) -> tuple[np.ndarray, Timeline]:
        with run.timer("audio_decode"):
            wav = load_audio(audio, info=ainfo)
        timeline = Timeline.from_samples(len(wav))
        if timeline.num_frames == 0:
            raise InputError(
                f"audio file '{audio}' holds only {timeline.audio_seconds:.3f} s of sound; at least 0.03 s is needed"
            )
        return wav, timeline

    def _motion(self, audio, ainfo: MediaInfo, cfg: PipelineConfig, run: RunLog) -> Motion | None:
        if not cfg.editor.use_depth:
            return None
        run.bar("audio_to_motion", 0, 1)
        with run.timer("audio_to_motion"):
            m = cfg.motion
            return self.motion(
                load_audio(audio, mono=False, info=ainfo), m.seed, m.temperature, m.mouth_amp, m.hubert_input
            )

    def _voice(self, wav: np.ndarray, n: int, cfg: PipelineConfig, run: RunLog) -> tuple[VoiceActivity, SilencePlan]:
        run.bar("voice_activity", 0, 1)
        with run.timer("voice_activity"):
            voice = self.vad(wav, n)
        plan = plan_silence(voice, cfg.stability, cfg.editor.use_depth, cfg.face.crossfade_frames)
        if plan.note:
            run.warnings.append(plan.note)
        return voice, plan

    def _expressions(self, motion: Motion | None, n: int, plan: SilencePlan, cfg: PipelineConfig) -> np.ndarray | None:
        """What the 3D stage receives: stage 1's expressions, smoothed and closed over silences as configured."""
        if motion is None:
            return None
        return shape_expressions(
            motion.expressions, n, plan, cfg.stability, self.depth.face_model.lip_gap_basis().cpu().numpy()
        )

    def _video_cache(self, video, cfg: PipelineConfig, run: RunLog):
        """This video's cache entry (`joygen.video_cache.open_entry`), or a null context when the cache is off."""
        if not cfg.video.cache:
            return nullcontext()
        with run.timer("video_cache"):
            hashes = {
                n: [file_sha256(p) for p in self.weights[n].files.values()] for n in CACHED_WEIGHTS if n in self.weights
            }
            hashes = hashes or {"process": self._session}  # models not from files: this process only
            key = fingerprint(cfg, hashes, str(self.editor.dtype))
            return open_entry(video, key, cfg.video.cache_dir or default_cache_dir(), run.warnings)

    @staticmethod
    def _write(batch, writer: EditWriter, log: FrameLog, previews: Previews, inter, preview, run: RunLog) -> None:
        """Step 10: the batch's frames into the videos, its facts into the log, its previews out, its
        intermediates written."""
        with run.timer("video_encode"):
            writer.write(batch)
        log.add(batch)
        if previews.add(batch) and preview:
            preview("depth", list(previews.items))
        if preview and run.frame_preview_due():
            last = batch.items[-1]
            preview("frame", {"frame": last.index, "source": last.image, "edited": last.edited, "kept": last.keep})
        if inter is not None:
            with run.timer("intermediates"):
                save_intermediates(inter, batch)
        run.bar("edit", batch.last_index + 1, log.num_frames)

    @staticmethod
    def _output_path(output: str | Path | None, video: str | Path) -> Path:
        if output is not None:
            return Path(output)
        return Path(tempfile.mkdtemp(prefix="joygen-out-")) / f"{Path(video).stem}_joygen.mp4"

    def _finish(
        self, final, vinfo, ainfo, timeline, source, motion, trajectory, log, previews, inter, report, cfg, run: RunLog,
        *, voice: VoiceActivity, plan: SilencePlan, expressions: np.ndarray | None,
    ) -> JoyGenOutput:  # fmt: skip
        """Build the result and its report; write the report and the run's intermediates."""
        n, no_face = timeline.num_frames, log.no_face
        if no_face:
            run.warnings.append(f"{len(no_face)} of {n} frames show no face and were left unedited")
        if motion is not None:
            trajectory.update(log.trajectory())
        sync = self._lip_sync(final, vinfo, n, cfg, run) if cfg.video.sync_score else None
        report_dict = build_report(
            inputs={"video": vinfo.to_dict(), "audio": ainfo.to_dict()},
            output=str(final),
            timeline=timeline,
            source_frames=source.num_source_frames,
            frames_without_face=no_face,
            box_source=log.box_sources(),
            depth=motion is not None,
            expression_rows=None if motion is None else len(motion.expressions),
            config=cfg.to_dict(),
            timings=run.timer.rounded(),
            total_s=time.perf_counter() - run.started,
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
            tiny_weights=self.tiny_weights,
            warnings=run.warnings,
            weights=self.weights.describe(),
            sync=sync,
            voice=voice.to_report(plan.spans),
            stability=stability_report(cfg.stability, plan, voice.active, log, trajectory),
        )
        if report is not None:
            report_dict["weights"] = self.weights.describe(with_hashes=True)
            write_text(report, json.dumps(report_dict, indent=2) + "\n", "report")
        if inter is not None:
            shaped = None if expressions is None or expressions is motion.expressions else expressions
            write_run_files(inter, log, trajectory, None if motion is None else motion.expressions, shaped)
        run.bar("done", 1, 1)
        return JoyGenOutput(
            video=final,
            num_frames=n,
            fps=FPS,
            frames_without_face=no_face,
            timings=run.timer.rounded(),
            report=report_dict,
            depth=motion is not None,
            trajectory=trajectory,
            depth_previews=previews.items,
            intermediates=inter,
            tiny_weights=self.tiny_weights,
            warnings=run.warnings,
            sync=sync,
        )

    def _lip_sync(self, final: Path, vinfo: MediaInfo, n: int, cfg: PipelineConfig, run: RunLog) -> dict:
        """The edit's LSE-C / LSE-D beside the source's with its own voice (`joygen.metrics`)."""
        from .metrics.api import edit_sync_block

        run.bar("lip_sync", 0, 1)
        with run.timer("lip_sync"):
            return edit_sync_block(
                final,
                vinfo.path,
                vinfo.audio is not None and not vinfo.still_image,
                self.weights,
                num_frames=n,
                device=str(self.device),
                cache_dir=cfg.video.cache_dir or default_cache_dir(),
                progress=lambda done, total: run.bar("lip_sync", done, total),
            )
