"""Deep3DFaceRecon: 5-point alignment to a 224 crop and the R-Net that regresses 257 3DMM coefficients.

Alignment (Deng et al. 2019, ``align_img``): the MTCNN points (y flipped up) are fitted to the 5-point
template of the BFM by least squares (POS); the frame is scaled by ``102 / s`` with PIL bicubic and cut to
224x224 around the fitted translation (black outside the frame). The R-Net is a torchvision-layout
ResNet-50 without ``fc`` plus seven 1x1 convolution heads; its 257 outputs are

    id 0:80 | exp 80:144 | tex 144:224 | angle 224:227 (rad, x y z) | gamma 227:254 | trans 254:257.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import WeightsError

CROP_SIZE = 224  # px, the R-Net's input side
RESCALE_FACTOR = 102.0  # the template's scale in the crop
HEAD_SIZES = (80, 64, 80, 3, 27, 2, 1)  # id, exp, tex, angle, gamma, (tx, ty), tz
COEFF_SLICES = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
}
NUM_COEFFS = 257


@dataclass(frozen=True)
class Alignment:
    """How a frame maps onto its 224 crop (the official ``crop_params``)."""

    width: int  # frame width w0, px
    height: int  # frame height h0, px
    scale: float  # s = 102 / s_POS: frame px -> crop px
    left: int  # crop origin in the scaled frame (int32-truncated)
    up: int
    translation: tuple[float, float]  # POS translation (t_x, t_y) in the y-up frame

    @property
    def scaled_size(self) -> tuple[int, int]:
        """(w, h) of the scaled frame: ``int32(w0 * s)``, ``int32(h0 * s)``."""
        return int(self.width * self.scale), int(self.height * self.scale)

    @property
    def crop_params(self) -> np.ndarray:
        """``[w0, h0, s, left, up, right, bottom]`` as the official code stores them."""
        return np.array(
            [self.width, self.height, self.scale, self.left, self.up, self.left + CROP_SIZE, self.up + CROP_SIZE],
            np.float64,
        )


def five_point_template(lm68: np.ndarray) -> np.ndarray:
    """5-point 3D template from the 68-point one: eye centres, nose tip, mouth corners. ``(5, 3)`` float32."""
    lm68 = np.asarray(lm68, np.float32)
    return np.stack([lm68[[36, 39]].mean(0), lm68[[42, 45]].mean(0), lm68[30], lm68[48], lm68[54]]).astype(np.float32)


def pos_fit(points_yup: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares POS fit of image points (y up) to 3D template points: translation (2,) and scale."""
    n = len(points_yup)
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3] = template
    a[0::2, 3] = 1
    a[1::2, 4:7] = template
    a[1::2, 7] = 1
    b = np.asarray(points_yup).reshape(2 * n, 1)
    k = np.linalg.lstsq(a, b, rcond=None)[0][:, 0]
    scale = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.array([k[3], k[7]]), float(scale)


def align_face(frame: np.ndarray, points: np.ndarray, template5: np.ndarray) -> tuple[np.ndarray, Alignment]:
    """Cut the 224 crop the R-Net reads.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        points: ``(5, 2)`` MTCNN points, x right / y down, px.
        template5: ``(5, 3)`` template (`five_point_template`).

    Returns:
        The ``(224, 224, 3)`` uint8 crop and its `Alignment`.
    """
    h0, w0 = frame.shape[:2]
    yup = np.asarray(points, np.float32).copy()
    yup[:, 1] = h0 - 1 - yup[:, 1]
    t, s_pos = pos_fit(yup, template5)
    s = RESCALE_FACTOR / s_pos
    w, h = int(np.int32(w0 * s)), int(np.int32(h0 * s))
    left = int(np.int32(w / 2 - CROP_SIZE / 2 + (t[0] - w0 / 2) * s))
    up = int(np.int32(h / 2 - CROP_SIZE / 2 + (h0 / 2 - t[1]) * s))
    scaled = Image.fromarray(frame).resize((w, h), Image.BICUBIC)
    crop = np.asarray(scaled.crop((left, up, left + CROP_SIZE, up + CROP_SIZE)))
    return crop, Alignment(w0, h0, s, left, up, (float(t[0]), float(t[1])))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)  # stride on the 3x3 ("v1.5")
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50Trunk(nn.Module):
    """torchvision's ResNet-50 layout without ``fc``: ``[B, 3, H, W]`` -> ``[B, 32 * base, 1, 1]``."""

    def __init__(self, base: int = 64, blocks=(3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = base
        for i, n in enumerate(blocks):
            width = base * 2**i
            layer = [Bottleneck(cin, width, 1 if i == 0 else 2)]
            cin = width * Bottleneck.expansion
            layer += [Bottleneck(cin, width) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = cin

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class ReconNet(nn.Module):
    """The R-Net: 224 crops in [0, 1] -> ``[B, 257]`` coefficients."""

    def __init__(self, base: int = 64):
        super().__init__()
        self.backbone = ResNet50Trunk(base)
        self.final_layers = nn.ModuleList(nn.Conv2d(self.backbone.out_channels, k, 1) for k in HEAD_SIZES)

    def forward(self, x):
        features = self.backbone(x)
        return torch.cat([head(features) for head in self.final_layers], dim=1).flatten(1)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> ReconNet:
        if "backbone.conv1.weight" not in state:
            raise WeightsError("not a Deep3DFaceRecon R-Net state dict (no 'backbone.conv1.weight')")
        net = cls(base=state["backbone.conv1.weight"].shape[0])
        net.load_state_dict(state, strict=True)
        return net.eval()


def load_recon_net(path: str | Path) -> ReconNet:
    """Load ``epoch_20.pth`` (only its ``net_recon`` entry), strictly."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "net_recon" not in ckpt:
            raise WeightsError("no 'net_recon' entry")
        return ReconNet.from_state_dict(ckpt["net_recon"])
    except (RuntimeError, KeyError, OSError, WeightsError, ValueError) as exc:
        raise WeightsError(f"Deep3DFaceRecon weights '{path}' cannot be loaded: {exc}") from exc


def crops_to_tensor(crops: np.ndarray, device, dtype=torch.float32) -> torch.Tensor:
    """``[B, 224, 224, 3]`` uint8 RGB -> ``[B, 3, 224, 224]`` in [0, 1] (x / 255 in float64, then cast)."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device).double().div(255)
    return x.permute(0, 3, 1, 2).contiguous().to(dtype)


def split_coeffs(coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
    """``[B, 257]`` -> named parts (`COEFF_SLICES`)."""
    return {name: coeffs[:, sl] for name, sl in COEFF_SLICES.items()}
