"""Face parsing with BiSeNet (CelebAMask-HQ, 19 classes), loading the official ``79999_iter.pth``.

The paste-back keeps only face pixels (classes 1-13: skin, brows, eyes, glasses, ears, earring, nose,
mouth, lips) of the generated face. The network is the one of zllrunning/face-parsing.PyTorch: a ResNet-18
context path with two attention-refinement modules, a feature-fusion module and three output heads, of
which only the first is used at inference. Channel widths are multiples of one base width (64 in the
official checkpoint), read back from the checkpoint, so the tiny test weights use the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import WeightsError

NUM_CLASSES = 19
PARSING_SIZE = 512  # px, the network's input side
FACE_CLASSES = range(1, 14)  # skin .. lower lip; background, neck, cloth, hair, hat are not face
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


class ResNet18(nn.Module):
    """ResNet-18 trunk returning the 1/8, 1/16 and 1/32 feature maps."""

    def __init__(self, base: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [base, base, 2 * base, 4 * base, 8 * base]
        for i in range(1, 5):
            stride = 1 if i == 1 else 2
            layer = nn.Sequential(BasicBlock(widths[i - 1], widths[i], stride), BasicBlock(widths[i], widths[i]))
            setattr(self, f"layer{i}", layer)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        feat = self.conv(x)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean((2, 3), keepdim=True))))
        return feat * attention


class ContextPath(nn.Module):
    def __init__(self, base: int = 64):
        super().__init__()
        self.resnet = ResNet18(base)
        self.arm16 = AttentionRefinement(4 * base, 2 * base)
        self.arm32 = AttentionRefinement(8 * base, 2 * base)
        self.conv_head32 = ConvBNReLU(2 * base, 2 * base)
        self.conv_head16 = ConvBNReLU(2 * base, 2 * base)
        self.conv_avg = ConvBNReLU(8 * base, 2 * base, kernel=1, padding=0)

    def forward(self, x):
        feat8, feat16, feat32 = self.resnet(x)
        context = self.conv_avg(feat32.mean((2, 3), keepdim=True))
        feat32_sum = self.arm32(feat32) + F.interpolate(context, feat32.shape[2:], mode="nearest")
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up


class FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, kernel=1, padding=0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, spatial, context):
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(feat.mean((2, 3), keepdim=True)))))
        return feat * attention + feat


class OutputHead(nn.Module):
    def __init__(self, cin: int, mid: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """BiSeNet face parser; ``forward`` returns the main head's logits ``[B, 19, H, W]``.

    The two auxiliary heads (``conv_out16``, ``conv_out32``) exist only so that the official checkpoint
    loads strictly; inference does not run them.
    """

    def __init__(self, n_classes: int = NUM_CLASSES, base: int = 64):
        super().__init__()
        self.cp = ContextPath(base)
        self.ffm = FeatureFusion(4 * base, 4 * base)
        self.conv_out = OutputHead(4 * base, 4 * base, n_classes)
        self.conv_out16 = OutputHead(2 * base, base, n_classes)
        self.conv_out32 = OutputHead(2 * base, base, n_classes)

    def forward(self, x):
        feat8, context8, _ = self.cp(x)
        logits = self.conv_out(self.ffm(feat8, context8))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> BiSeNet:
        if "cp.resnet.conv1.weight" not in state:
            raise WeightsError("not a BiSeNet face-parsing state dict (no 'cp.resnet.conv1.weight')")
        model = cls(n_classes=state["conv_out.conv_out.weight"].shape[0], base=state["cp.resnet.conv1.weight"].shape[0])
        model.load_state_dict(state, strict=True)
        return model.eval()


def load_bisenet(path: str | Path) -> BiSeNet:
    """Load ``79999_iter.pth`` (a plain state dict) strictly."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return BiSeNet.from_state_dict(state)
    except (RuntimeError, KeyError, WeightsError, OSError) as exc:
        raise WeightsError(f"face-parsing weights '{path}' cannot be loaded: {exc}") from exc


def _resize_for_parsing(crop: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(crop).resize((PARSING_SIZE, PARSING_SIZE), Image.BILINEAR))


class FaceParser(nn.Module):
    """Face masks of square context crops, as the official paste-back computes them."""

    def __init__(self, net: BiSeNet):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> FaceParser:
        return cls(load_bisenet(path))

    @torch.no_grad()
    def forward(self, crops: list[np.ndarray], map_fn: Callable[..., Iterable] = map) -> np.ndarray:
        """Parse context crops.

        Args:
            crops: ``(S, S, 3)`` uint8 RGB squares (any sizes).
            map_fn: how the per-crop resizes are mapped, e.g. a thread pool's ``map`` (PIL releases the GIL).

        Returns:
            ``[B, 512, 512]`` uint8 masks: 255 on face classes (1-13), 0 elsewhere, in the 512 parsing space.
        """
        # PIL bilinear resize to 512, then ToTensor + ImageNet normalisation, as the official preprocessing.
        resized = np.stack(list(map_fn(_resize_for_parsing, crops)))
        param = next(self.net.parameters())
        x = torch.from_numpy(resized).to(param.device).permute(0, 3, 1, 2).float().div(255).contiguous()
        x = ((x - self.mean) / self.std).to(param.dtype)
        labels = self.net(x).argmax(1)
        face = (labels >= FACE_CLASSES.start) & (labels < FACE_CLASSES.stop)
        return (face.to(torch.uint8) * 255).cpu().numpy()
