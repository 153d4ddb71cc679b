"""DWPose whole-body keypoints (RTMPose-l, ``dw-ll_ucoco_384.onnx``) through onnxruntime.

The official stage 2 runs DWPose through mmpose's ``inference_topdown`` on the whole frame and keeps the
68 face points (COCO-WholeBody keypoints 23..90, dlib order). This module reproduces that top-down
inference without mmpose:

1. box = the whole frame, centre + size x 1.25, widened to the model's 3:4 aspect ratio;
2. affine warp to 288x384 (bilinear), RGB, ``(x - mean) / std`` with ImageNet statistics x 255;
3. SimCC outputs (x: 576 bins, y: 768 bins, two bins per pixel); with the official ``flip_test`` the
   mirrored image is run too, its outputs mirrored back (left/right keypoints swapped, x bins reversed)
   and averaged;
4. the arg-max of each bin vector / 2 -> model-input pixels -> frame pixels.

CPU and CUDA providers are used as available; frames are sent in batches when the model allows it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import WeightsError

INPUT_SIZE = (288, 384)  # (w, h) of the model input
SIMCC_SPLIT = 2.0  # bins per pixel
BOX_PADDING = 1.25
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)
FACE = slice(23, 91)  # COCO-WholeBody: the 68 face points
NUM_KEYPOINTS = 133


def _face_flip() -> list[int]:
    """dlib-68 mirror pairs (jaw, brows, nose, eyes, lips)."""
    pairs = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)]
    pairs += [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    flip = list(range(68))
    for a, b in pairs:
        flip[a], flip[b] = b, a
    return flip


# COCO-WholeBody flip pairs: body, feet, face, hands.
FLIP_INDICES = (
    [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    + [20, 21, 22, 17, 18, 19]
    + [23 + i for i in _face_flip()]
    + list(range(112, 133))
    + list(range(91, 112))
)


def warp_matrix(center: np.ndarray, scale: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """mmpose's ``get_warp_matrix`` without rotation: frame -> model input, ``(2, 3)``."""
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([scale[0] * -0.5, 0.0])
    dst[0] = [size[0] * 0.5, size[1] * 0.5]
    dst[1] = dst[0] + np.array([size[0] * -0.5, 0.0])
    for pts in (src, dst):  # third point: the first direction turned by 90 degrees
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]])
    return cv2.getAffineTransform(src, dst)


def frame_box(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and size of the whole-frame box, padded and widened to the model's aspect ratio."""
    center = np.array([width / 2, height / 2], np.float32)
    w, h = width * BOX_PADDING, height * BOX_PADDING
    aspect = INPUT_SIZE[0] / INPUT_SIZE[1]
    scale = np.array([w, w / aspect] if w > h * aspect else [h * aspect, h], np.float32)
    return center, scale


class DWPose:
    """Face landmarks from DWPose.

    Args:
        path: ``dw-ll_ucoco_384.onnx``.
        device: "cpu" or "cuda[:N]" (CUDA needs onnxruntime's CUDA provider; otherwise the CPU is used).
        flip_test: also run the mirrored frame and average, as the official configuration does.
    """

    def __init__(self, path: str | Path, device: str = "cpu", flip_test: bool = True):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            index = int(str(device).split(":")[1]) if ":" in str(device) else 0
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise WeightsError(f"DWPose model '{path}' cannot be loaded: {exc}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.flip_test = flip_test

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.fixed_batch in (None, len(batch)):
            x, y = self.session.run(None, {self.input_name: batch})[:2]
            return x, y
        parts = [self.session.run(None, {self.input_name: batch[i : i + 1]})[:2] for i in range(len(batch))]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def __call__(self, frames: list[np.ndarray]) -> np.ndarray:
        """68 face points per frame.

        Args:
            frames: ``(H, W, 3)`` uint8 RGB frames.

        Returns:
            ``[B, 68, 2]`` float32 x, y in frame pixels.
        """
        inputs, centers, scales = [], [], []
        for frame in frames:
            center, scale = frame_box(frame.shape[1], frame.shape[0])
            warped = cv2.warpAffine(frame, warp_matrix(center, scale), INPUT_SIZE, flags=cv2.INTER_LINEAR)
            inputs.append(((warped.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1))
            centers.append(center)
            scales.append(scale)
        batch = np.ascontiguousarray(np.stack(inputs))
        sx, sy = self._run(batch)
        if self.flip_test:
            fx, fy = self._run(np.ascontiguousarray(batch[..., ::-1]))
            sx = (sx + fx[:, FLIP_INDICES, ::-1]) * 0.5
            sy = (sy + fy[:, FLIP_INDICES]) * 0.5
        points = np.stack([sx[:, FACE].argmax(-1), sy[:, FACE].argmax(-1)], -1).astype(np.float32) / SIMCC_SPLIT
        size = np.array(INPUT_SIZE, np.float32)
        centers, scales = np.stack(centers)[:, None], np.stack(scales)[:, None]
        return points / size * scales + centers - 0.5 * scales


def write_tiny_dwpose(path: str | Path, seed: int = 0) -> None:
    """A tiny random network with DWPose's interface (input ``[N, 3, 384, 288]``, ``simcc_x [N, 133, 576]``,
    ``simcc_y [N, 133, 768]``), for tests: its keypoints are meaningless."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    width, tile = 8, 16
    bins_x, bins_y = int(INPUT_SIZE[0] * SIMCC_SPLIT) // tile, int(INPUT_SIZE[1] * SIMCC_SPLIT) // tile
    weights = {
        "conv_w": rng.standard_normal((width, 3, 16, 16)).astype(np.float32) * 0.05,
        "fc_x": rng.standard_normal((width, NUM_KEYPOINTS * bins_x)).astype(np.float32),
        "fc_y": rng.standard_normal((width, NUM_KEYPOINTS * bins_y)).astype(np.float32),
        "shape_x": np.array([-1, NUM_KEYPOINTS, bins_x], np.int64),
        "shape_y": np.array([-1, NUM_KEYPOINTS, bins_y], np.int64),
        "tiles": np.array([1, 1, tile], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["input", "conv_w"], ["c"], strides=[16, 16]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", "fc_x"], ["mx"]),
        helper.make_node("Reshape", ["mx", "shape_x"], ["rx"]),
        helper.make_node("Tile", ["rx", "tiles"], ["simcc_x"]),
        helper.make_node("MatMul", ["f", "fc_y"], ["my"]),
        helper.make_node("Reshape", ["my", "shape_y"], ["ry"]),
        helper.make_node("Tile", ["ry", "tiles"], ["simcc_y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_dwpose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE[1], INPUT_SIZE[0]])],
        [
            helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, ["batch", NUM_KEYPOINTS, 576]),
            helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, ["batch", NUM_KEYPOINTS, 768]),
        ],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="joygen-tiny")
    model.ir_version = 8
    onnx.checker.check_model(model)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
