"""One batch of frames through an edit: `FrameBatch` and the per-batch steps `JoyGenPipeline` runs in order.

Each step takes the batch and the one model it needs, and fills in a field of every frame that has a face:

1. `analyse`     the voice-independent part, from the video cache or computed: the face (MTCNN, the landmark
                 box, smoothed over the source frames when asked), the editor's masked and reference latents,
                 the paste-back's face mask, the 3D fit;
2. `mouth_depth` stage 2: the frame's 3D face with stage 1's expression, as the editor's depth map;
3. `generate`    stage 3: the 12-channel latents and the audio tokens through the UNet, decoded;
4. `paste`       the generated face blended back into the frame.

A frame without a face, or kept with its own mouth (``keep``: silence_mode keep-source), keeps ``edited = None``
and is passed through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import torch

from .boxes import context_crop, face_crop
from .config import BlendConfig, PipelineConfig
from .editor.mouth_editor import MouthEditor
from .editor.paste_back import paste_back
from .editor.whisper import WhisperStream
from .face3d.detection import Face
from .face3d.mouth_depth import MouthDepth, MouthDepthResult
from .report import StageTimer
from .stability import BoxSmoother
from .video_cache import FrameAnalysis, VideoCache


@dataclass
class FrameItem:
    """One output frame on its way through the steps."""

    index: int  # output frame number (25 fps)
    source: int  # source frame it shows
    image: np.ndarray  # (H, W, 3) uint8 RGB
    analysis: FrameAnalysis | None = None  # step 1
    depth: MouthDepthResult | None = None  # step 2 (depth mode)
    generated: np.ndarray | None = None  # step 3: (256, 256, 3) uint8 RGB face
    edited: np.ndarray | None = None  # step 4: the frame with its new mouth; None: passed through
    keep: bool = False  # the voice is silent here and the frame keeps its own mouth (silence_mode keep-source)

    @property
    def face(self) -> Face | None:
        return self.analysis.face if self.analysis is not None else None


@dataclass
class FrameBatch:
    """Consecutive output frames processed together."""

    items: list[FrameItem] = field(default_factory=list)

    def __iter__(self) -> Iterator[FrameItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def with_face(self) -> list[FrameItem]:
        """The frames that are edited: those with a face, less those kept with their own mouth."""
        return [it for it in self.items if it.face is not None and not it.keep]

    @property
    def last_index(self) -> int:
        return self.items[-1].index


def batches(
    frames: Iterable[tuple[int, tuple[int, np.ndarray]]], size: int, keep: np.ndarray | None = None
) -> Iterator[FrameBatch]:
    """``(index, (source, image))`` in timeline order -> `FrameBatch` es of ``size`` frames; ``keep[index]``
    true: the frame keeps its own mouth (silence_mode keep-source)."""
    batch = FrameBatch()
    for index, (source, image) in frames:
        batch.items.append(FrameItem(index, source, image, keep=keep is not None and bool(keep[index])))
        if len(batch) == size:
            yield batch
            batch = FrameBatch()
    if batch.items:
        yield batch


@dataclass
class Models:
    """What `analyse` runs on frames the cache does not hold."""

    face_detector: object  # joygen.face3d.detection.FaceDetector
    face_parser: object  # joygen.editor.face_parsing.FaceParser
    editor: MouthEditor
    depth: MouthDepth | None  # None: no 3D fit (the no-depth mode)


def analyse(
    batch: FrameBatch,
    models: Models,
    cfg: PipelineConfig,
    cache: VideoCache | None,
    timer: StageTimer,
    pool: Executor,
    smoother: BoxSmoother | None = None,
) -> None:
    """Step 1: every frame's voice-independent analysis, from the cache or computed (and then cached).

    With a ``smoother`` the crops are cut from the smoothed boxes (which the cache then holds)."""
    need_3d = cfg.editor.use_depth
    for it in batch:
        it.analysis = cache.get(it.source, need_3d) if cache is not None else None
    todo = [it for it in batch if it.analysis is None]
    if todo:
        with timer("face_detection"):
            faces = models.face_detector([it.image for it in todo], cfg.face.landmark_box, cfg.face.iou_threshold)
        for it, face in zip(todo, faces):
            it.analysis = FrameAnalysis(face)
    if smoother is not None:
        fresh = {id(it) for it in todo}
        for it in batch:  # in order: the filter runs over source frames as they first appear
            face = smoother(it.source, it.analysis.face, cached=id(it) not in fresh)
            if id(it) in fresh:
                it.analysis.face = face
    if not todo:
        return
    found = [it for it in todo if it.face is not None]
    if found:
        images, boxes = [it.image for it in found], [it.face.crop_box for it in found]
        with timer("crop"):
            crops = np.stack(list(pool.map(face_crop, images, boxes)))
            contexts = list(pool.map(context_crop, images, boxes, [cfg.blend.expand] * len(found)))
        with timer("reference_latents"):
            latents = models.editor.reference_latents(crops).float().cpu().numpy()
        with timer("face_parsing"):
            parsing = models.face_parser(contexts, pool.map)
        for it, latent, mask in zip(found, latents, parsing):
            it.analysis.latents, it.analysis.parsing = latent, mask
        if need_3d:
            with timer("reconstruction"):
                coeffs, alignments = models.depth.coefficients(images, [it.face for it in found], pool)
            for it, c, al in zip(found, coeffs, alignments):
                it.analysis.coeffs, it.analysis.alignment = c, al
    if cache is not None:
        for it in todo:
            cache.put(it.source, it.analysis)


def mouth_depth(
    batch: FrameBatch, depth: MouthDepth, expressions: np.ndarray, timer: StageTimer, pool: Executor
) -> None:
    """Step 2 (stage 2): each face's 3D fit with stage 1's expression of its output frame -> depth map."""
    todo = batch.with_face
    if not todo:
        return
    with timer("mouth_depth"):
        results = depth.render(
            np.stack([it.analysis.coeffs for it in todo]),
            [it.analysis.alignment for it in todo],
            [it.face for it in todo],
            expressions[[it.index for it in todo]],
            pool,
        )
    for it, result in zip(todo, results):
        it.depth = result


def generate(batch: FrameBatch, editor: MouthEditor, features: WhisperStream, timer: StageTimer) -> None:
    """Step 3 (stage 3): the UNet re-draws each face from its latents, its mouth depth and the voice."""
    todo = batch.with_face
    if not todo:
        return
    with timer("generate"):
        reference = torch.from_numpy(np.stack([it.analysis.latents for it in todo])).to(editor.device, editor.dtype)
        depths = np.stack([it.depth.depth256 for it in todo]) if todo[0].depth is not None else None
        unet_input = editor.assemble(reference, editor.depth_latents(depths, len(todo)))
        tokens = features.tokens([it.index for it in todo]).to(editor.device)
        generated = editor.decode(editor.generate(unet_input, tokens))
    for it, face in zip(todo, generated):
        it.generated = face


def paste(batch: FrameBatch, blend: BlendConfig, timer: StageTimer, pool: Executor) -> None:
    """Step 4: each generated face blended into its frame below the mouth-mask top (the official paste-back)."""
    todo = batch.with_face

    def one(it: FrameItem) -> np.ndarray:
        return paste_back(
            it.image,
            it.generated,
            it.face.crop_box,
            it.analysis.parsing,
            expand=blend.expand,
            upper_boundary_ratio=blend.upper_boundary_ratio,
            feather=blend.feather,
        )

    with timer("blend"):
        for it, frame in zip(todo, pool.map(one, todo)):
            it.edited = frame
