"""MTCNN face detector (Zhang et al. 2016) with the weights of the facenet-pytorch wheel.

Three cascaded networks: P-Net proposes boxes on an image pyramid, R-Net and O-Net re-score and refine
them, O-Net also gives 5 landmarks (left eye, right eye, nose, left and right mouth corners). The
arithmetic follows facenet-pytorch's ``detect_face`` (the detector the official JoyGen stage 2 calls), so
boxes and points match it to float rounding; it runs on batches of same-sized frames on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError

PNET_CELL = 12  # px, P-Net's receptive field at pyramid scale 1
PNET_STRIDE = 2  # px, P-Net's output stride
NMS_IOU = (0.5, 0.7, 0.7, 0.7)  # per-scale, after P-Net, after R-Net, after O-Net ("min" overlap)
MAX_BATCH = 512  # crops per R-/O-Net forward


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box regression

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))  # the Caffe weights' (W, H, C) order
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # 5 x coordinates, then 5 y coordinates

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


@dataclass
class Detections:
    """Faces found in one image, largest first."""

    boxes: np.ndarray  # (K, 4) float32 x1, y1, x2, y2 in px
    probs: np.ndarray  # (K,) float32 face probability
    points: np.ndarray  # (K, 5, 2) float32 x, y: left eye, right eye, nose, left / right mouth corner


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    iou: float,
    mode: str = "union",
    plus_one: bool = False,
) -> torch.Tensor:
    """Greedy NMS per group (image): indices of kept boxes, best first within each step.

    ``mode="union"``, no +1: torchvision's ``batched_nms``. ``mode="min"`` with +1: MTCNN's "Min" overlap.
    The greedy loop runs on the host in float64 (one copy off the device): on a GPU each step would be a
    dozen tiny kernels and a synchronisation, and 32 frames of the demo clip take about 3,000 steps. Every
    operation is IEEE-exact elementwise arithmetic, so the kept indices do not depend on where it runs.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    offset = groups.to(boxes) * (boxes.max() + 1)  # separate groups in coordinate space
    b = (boxes + offset[:, None]).double().cpu().numpy()
    one = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = b.T
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores.double().cpu().numpy(), kind="stable")  # descending, ties in input order
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one, 0.0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one, 0.0)
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):  # empty boxes: 0/0 is NaN and drops, as in torch
            overlap = inter / (np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter)
        order = rest[overlap <= iou]
    return torch.as_tensor(np.array(keep, dtype=np.int64), device=boxes.device)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow boxes to squares around the same centre (MTCNN's ``rerec``)."""
    boxes = boxes.clone()
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    boxes = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] = boxes[:, :4] + reg * torch.stack([w, h, w, h], dim=1)
    return boxes


def _crops(images: torch.Tensor, boxes: torch.Tensor, groups: torch.Tensor, size: int):
    """Area-resampled crops ``[N, 3, size, size]`` of the boxes (clipped to the image; 1-based like Caffe)."""
    h, w = images.shape[2:]
    b = boxes[:, :4].trunc().int().cpu().numpy()
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    valid = np.flatnonzero((ey > y - 1) & (ex > x - 1))
    g = groups.cpu().numpy()
    crops = [
        F.interpolate(images[g[k], :, y[k] - 1 : ey[k], x[k] - 1 : ex[k]][None], (size, size), mode="area")
        for k in valid
    ]
    keep = torch.from_numpy(valid).to(boxes.device)
    return (torch.cat(crops) if crops else images.new_zeros((0, 3, size, size))), keep


def _batched(net: nn.Module, x: torch.Tensor):
    outs = [net(x[i : i + MAX_BATCH]) for i in range(0, len(x), MAX_BATCH)]
    return [torch.cat(parts) for parts in zip(*outs)]


class MTCNN(nn.Module):
    """Batched MTCNN.

    Args:
        min_face_size: smallest face to look for, px (the official JoyGen stage 2 uses 50).
        thresholds: face-probability thresholds of P-, R- and O-Net.
        factor: pyramid scale step.
    """

    def __init__(self, min_face_size: int = 50, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face_size = min_face_size
        self.thresholds = tuple(thresholds)
        self.factor = factor

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs) -> MTCNN:
        """Load ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` (state dicts) from ``folder``."""
        model = cls(**kwargs)
        for name in ("pnet", "rnet", "onet"):
            path = Path(folder) / f"{name}.pt"
            try:
                getattr(model, name).load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except (OSError, RuntimeError) as exc:
                raise WeightsError(f"MTCNN weights '{path}' cannot be loaded: {exc}") from exc
        return model.eval()

    @torch.no_grad()
    def detect(self, images: np.ndarray) -> list[Detections]:
        """Find faces in ``[B, H, W, 3]`` uint8 RGB images of one size; one `Detections` per image."""
        param = next(self.parameters())
        imgs = torch.as_tensor(np.require(images, np.uint8, ["C", "W"]), device=param.device)
        imgs = imgs.permute(0, 3, 1, 2).to(param.dtype)  # NCHW view of NHWC memory, as facenet-pytorch
        batch, (h, w) = imgs.shape[0], imgs.shape[2:]

        # 1. P-Net on an image pyramid, NMS per scale, then across scales.
        scale, min_len, scales = 12.0 / self.min_face_size, min(h, w) * 12.0 / self.min_face_size, []
        while min_len >= 12:
            scales.append(scale)
            scale *= self.factor
            min_len *= self.factor
        all_boxes, all_groups = [], []
        for s in scales:
            reg, prob = self.pnet(_normalise(F.interpolate(imgs, (int(h * s + 1), int(w * s + 1)), mode="area")))
            hit = prob[:, 1] >= self.thresholds[0]
            where = hit.nonzero()  # (image, row, col)
            cells = where[:, 1:].to(reg.dtype).flip(1)  # (col, row)
            q1 = ((PNET_STRIDE * cells + 1) / s).floor()
            q2 = ((PNET_STRIDE * cells + PNET_CELL) / s).floor()
            boxes = torch.cat([q1, q2, prob[:, 1][hit][:, None], reg.permute(1, 0, 2, 3)[:, hit].T], dim=1)
            keep = _nms(boxes[:, :4], boxes[:, 4], where[:, 0], NMS_IOU[0])
            all_boxes.append(boxes[keep])
            all_groups.append(where[keep, 0])
        boxes = torch.cat(all_boxes) if all_boxes else imgs.new_zeros((0, 9))
        groups = torch.cat(all_groups) if all_groups else torch.zeros(0, dtype=torch.long, device=imgs.device)
        keep = _nms(boxes[:, :4], boxes[:, 4], groups, NMS_IOU[1])
        boxes, groups = boxes[keep], groups[keep]
        wh = (boxes[:, 2:4] - boxes[:, :2]).repeat(1, 2)
        boxes = _square(torch.cat([boxes[:, :4] + boxes[:, 5:9] * wh, boxes[:, 4:5]], dim=1))

        # 2. R-Net re-scores 24x24 crops and refines the boxes.
        if len(boxes):
            crops, valid = _crops(imgs, boxes, groups, 24)
            boxes, groups = boxes[valid], groups[valid]
            reg, prob = _batched(self.rnet, _normalise(crops))
            ok = prob[:, 1] > self.thresholds[1]
            boxes = torch.cat([boxes[ok, :4], prob[ok, 1:2]], dim=1)
            groups, reg = groups[ok], reg[ok]
            keep = _nms(boxes[:, :4], boxes[:, 4], groups, NMS_IOU[2])
            boxes = _square(_regress(boxes[keep], reg[keep]))
            groups = groups[keep]

        # 3. O-Net on 48x48 crops: final scores, boxes and 5 landmarks.
        points = imgs.new_zeros((0, 5, 2))
        if len(boxes):
            crops, valid = _crops(imgs, boxes, groups, 48)
            boxes, groups = boxes[valid], groups[valid]
            reg, landmarks, prob = _batched(self.onet, _normalise(crops))
            ok = prob[:, 1] > self.thresholds[2]
            boxes = torch.cat([boxes[ok, :4], prob[ok, 1:2]], dim=1)
            groups, reg, landmarks = groups[ok], reg[ok], landmarks[ok]
            bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
            bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
            px = bw * landmarks[:, :5] + boxes[:, 0:1] - 1
            py = bh * landmarks[:, 5:] + boxes[:, 1:2] - 1
            points = torch.stack([px, py], dim=2)
            boxes = _regress(boxes, reg)
            keep = _nms(boxes[:, :4], boxes[:, 4], groups, NMS_IOU[3], mode="min", plus_one=True)
            boxes, groups, points = boxes[keep], groups[keep], points[keep]

        boxes, points, groups = boxes.float().cpu().numpy(), points.float().cpu().numpy(), groups.cpu().numpy()
        result = []
        for i in range(batch):
            sel = np.flatnonzero(groups == i)
            b, p = boxes[sel], points[sel]
            order = np.argsort((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), kind="stable")[::-1]
            result.append(Detections(b[order, :4], b[order, 4], p[order]))
        return result
