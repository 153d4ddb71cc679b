#!/usr/bin/env python3
"""Face detection split into its parts, on the demo clip, in batches of 32 frames as the pipeline runs it.

Times MTCNN with its NMS on the host (as shipped, and how much of it is the NMS), MTCNN with the per-step
device NMS it had before d41c545 (kept here as the baseline, and checked to give the same detections), and
DWPose (the bench's tiny stand-in network). From the repo root, with the MTCNN weights installed
(facenet-pytorch, ``--no-deps``)::

    python scripts/profile_detect.py [cuda|cpu] [FRAMES]      # default: cuda 256

Prints one JSON line, and writes it to ``$OUT/profile-detect.json`` when ``$OUT`` is set (the device tool).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joygen.face3d import mtcnn as M  # noqa: E402
from joygen.face3d.dwpose import DWPose, write_tiny_dwpose  # noqa: E402
from joygen.media import ffmpeg_exe  # noqa: E402
from joygen.weights.locator import WeightsLocator  # noqa: E402

BATCH = 32


def device_nms(boxes, scores, groups, iou, mode="union", plus_one=False):
    """The NMS before d41c545: the same greedy loop, each step on the boxes' device."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    offset = groups.to(boxes) * (boxes.max() + 1)
    b = (boxes + offset[:, None]).double()
    one = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = b.unbind(1)
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = torch.argsort(scores, descending=True, stable=True)
    keep = []
    while order.numel():
        i, rest = order[0], order[1:]
        keep.append(i)
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest]) + one).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest]) + one).clamp(min=0)
        inter = w * h
        overlap = inter / (torch.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter)
        order = rest[overlap <= iou]
    return torch.stack(keep)


def demo_frames(count: int) -> np.ndarray:
    args = [ffmpeg_exe(), "-v", "error", "-stream_loop", "-1", "-i", str(ROOT / "assets/examples/example_5s.mp4")]
    args += ["-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(args, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 900, 900, 3)


def main() -> None:
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
    frames = demo_frames(int(sys.argv[2]) if len(sys.argv) > 2 else 256)
    found = WeightsLocator(use_public=True).find("mtcnn")
    if found is None:
        sys.exit("profile_detect: no MTCNN weights (pip install --no-deps facenet-pytorch)")
    detector = M.MTCNN.from_pretrained(found.folder).to(device)
    onnx = Path(tempfile.mkdtemp()) / "dwpose.onnx"
    write_tiny_dwpose(onnx)
    pose = DWPose(onnx, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def timed(fn):
        sync()
        start = time.perf_counter()
        out = [fn(frames[i : i + BATCH]) for i in range(0, len(frames), BATCH)]
        sync()
        return time.perf_counter() - start, out

    detector.detect(frames[:BATCH])  # warm-up
    pose(list(frames[:4]))
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    result: dict = {"device": name, "frames": len(frames), "batch": BATCH}

    host_nms, nms_seconds = M._nms, [0.0]

    def counted(*args, **kwargs):
        start = time.perf_counter()
        keep = host_nms(*args, **kwargs)
        nms_seconds[0] += time.perf_counter() - start
        return keep

    try:
        M._nms = counted
        result["mtcnn_host_nms_s"], shipped = timed(detector.detect)
        result["of_which_nms_s"] = nms_seconds[0]
        M._nms = device_nms
        result["mtcnn_device_nms_s"], before = timed(detector.detect)
    finally:
        M._nms = host_nms
    pairs = [(x, y) for p, q in zip(shipped, before) for x, y in zip(p, q)]
    result["same_detections"] = all(
        np.array_equal(x.boxes, y.boxes) and np.array_equal(x.points, y.points) for x, y in pairs
    )
    result["dwpose_s"], _ = timed(lambda batch: pose(list(batch)))
    result["dwpose_providers"] = pose.session.get_providers()
    print(json.dumps(result))
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "profile-detect.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
