"""FID (Fréchet Inception Distance) between two sets of images, with the standard FID Inception network.

The network is the TensorFlow FID Inception-v3 ("2015-12-05") as ported by pytorch-fid: Inception-v3 with the
FID-specific blocks (average pooling without the padded zeros in the A, C and first E blocks, max pooling in the
last E block), 2048-d features after the final average pooling. It is written here without torchvision, with
torchvision's key names, so ``pt_inception-2015-12-05-6726825d.pth`` (566 entries, the 1008-way ``fc`` included)
loads into it strictly. Preprocessing is pytorch-fid's: RGB in [0, 1], bilinear resize to 299x299
(``align_corners=False``, no antialiasing), then ``2x - 1``.

``width_divisor`` builds the same layers with every channel count divided (the tiny test set uses 8: 256-d
features); `load_inception` reads it from the file.

FID itself: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` over the feature means and covariances (``ddof=1``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, WeightsError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048
INPUT_SIZE = 299
NUM_CLASSES = 1008  # the TF graph's classifier; unused for FID, present in the weights file
TINY_WIDTH_DIVISOR = 16  # the tiny test set's Inception: same layers, 1/16 of the channels


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    def __init__(self, cin: int, pool: int, c):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, c(64), kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, c(48), kernel_size=1)
        self.branch5x5_2 = BasicConv2d(c(48), c(64), kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c(64), c(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c(96), c(96), kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, c(pool), kernel_size=1)
        self.out = c(64) + c(64) + c(96) + c(pool)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg(x))], 1)


class MixedB(nn.Module):
    def __init__(self, cin: int, c):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, c(384), kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c(64), c(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c(96), c(96), kernel_size=3, stride=2)
        self.out = c(384) + c(96) + cin

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class MixedC(nn.Module):
    def __init__(self, cin: int, c7: int, c):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, c(192), kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c(c7), kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c(c7), c(c7), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c(c7), c(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c(c7), kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c(c7), c(c7), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c(c7), c(c7), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c(c7), c(c7), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c(c7), c(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, c(192), kernel_size=1)
        self.out = 4 * c(192)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, self.branch7x7dbl_5(d), self.branch_pool(_avg(x))], 1)


class MixedD(nn.Module):
    def __init__(self, cin: int, c):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, c(192), kernel_size=1)
        self.branch3x3_2 = BasicConv2d(c(192), c(320), kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, c(192), kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(c(192), c(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(c(192), c(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(c(192), c(192), kernel_size=3, stride=2)
        self.out = c(320) + c(192) + cin

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class MixedE(nn.Module):
    def __init__(self, cin: int, c, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # the last block of the TF graph max-pools its pool branch
        self.branch1x1 = BasicConv2d(cin, c(320), kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, c(384), kernel_size=1)
        self.branch3x3_2a = BasicConv2d(c(384), c(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(c(384), c(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, c(448), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c(448), c(384), kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(c(384), c(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(c(384), c(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, c(192), kernel_size=1)
        self.out = c(320) + 4 * c(384) + c(192)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pool = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pool)], 1)


class FIDInception(nn.Module):
    """FID Inception-v3: ``[N, 3, H, W]`` RGB in [0, 1] -> ``[N, feature_dim]`` pool3 features."""

    def __init__(self, width_divisor: int = 1):
        super().__init__()
        self.width_divisor = width_divisor

        def c(n: int) -> int:
            return max(1, n // width_divisor)

        self.Conv2d_1a_3x3 = BasicConv2d(3, c(32), kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(c(32), c(32), kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(c(32), c(64), kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(c(64), c(80), kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(c(80), c(192), kernel_size=3)
        self.Mixed_5b = MixedA(c(192), 32, c)
        self.Mixed_5c = MixedA(self.Mixed_5b.out, 64, c)
        self.Mixed_5d = MixedA(self.Mixed_5c.out, 64, c)
        self.Mixed_6a = MixedB(self.Mixed_5d.out, c)
        self.Mixed_6b = MixedC(self.Mixed_6a.out, 128, c)
        self.Mixed_6c = MixedC(self.Mixed_6b.out, 160, c)
        self.Mixed_6d = MixedC(self.Mixed_6c.out, 160, c)
        self.Mixed_6e = MixedC(self.Mixed_6d.out, 192, c)
        self.Mixed_7a = MixedD(self.Mixed_6e.out, c)
        self.Mixed_7b = MixedE(self.Mixed_7a.out, c, max_pool=False)
        self.Mixed_7c = MixedE(self.Mixed_7b.out, c, max_pool=True)
        self.feature_dim = self.Mixed_7c.out
        self.fc = nn.Linear(self.feature_dim, NUM_CLASSES)  # kept so that the weights file loads strictly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> FIDInception:
    """Load the FID Inception weights (official, or a narrower tiny file of the same layout) strictly."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        first = state["Conv2d_1a_3x3.conv.weight"].shape[0]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a weights problem
        raise WeightsError(f"FID Inception weights '{path}' cannot be read as a state dict: {exc}") from exc
    if 32 % first:
        raise WeightsError(f"FID Inception weights '{path}': first layer has {first} channels (32 or 32/k expected)")
    model = FIDInception(32 // first)
    own = model.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise WeightsError(
            f"FID Inception weights '{path}' do not fit the FID Inception-v3: missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}, wrong shape {wrong[:4]}"
        )
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value.to(own[key].dtype))
    return model.to(device).eval()


# -- statistics ---------------------------------------------------------------------------------------------------


class FeatureStats:
    """Running mean and covariance of feature vectors (float64 sums), so that sets of any size stream through."""

    def __init__(self, dim: int):
        self.n = 0
        self.sum = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def add(self, features: np.ndarray) -> None:
        f = np.asarray(features, np.float64).reshape(-1, self.sum.size)
        self.n += f.shape[0]
        self.sum += f.sum(0)
        self.outer += f.T @ f

    def merge(self, other: FeatureStats) -> None:
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """Sample covariance (``ddof=1``, as ``np.cov``)."""
        if self.n < 2:
            raise InputError(f"FID needs at least 2 images per set, got {self.n}")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n": np.array(self.n), "sum": self.sum, "outer": self.outer}

    @classmethod
    def from_arrays(cls, arrays) -> FeatureStats:
        stats = cls(arrays["sum"].size)
        stats.n, stats.sum, stats.outer = int(arrays["n"]), np.array(arrays["sum"]), np.array(arrays["outer"])
        return stats


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))``.

    A ridge of 1e-6 is added when ``sqrtm`` gives non-finite values (pytorch-fid's fallback). Sets with fewer images
    than feature dimensions have singular covariances; FID is then strongly biased (papers use thousands of frames).
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError("the two sets have features of different sizes")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a set smaller than the feature size has a singular covariance
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        ridge = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + ridge) @ (s2 + ridge))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"sqrtm of the covariance product is complex (imaginary part {np.abs(covmean.imag).max()})"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


@torch.no_grad()
def image_features(
    model: nn.Module, images: Iterable[np.ndarray], batch_size: int = 32, bgr: bool = False
) -> np.ndarray:
    """Features of ``(H, W, 3)`` uint8 images (RGB, or BGR with ``bgr=True``), ``[N, feature_dim]`` float64."""
    device = next(model.parameters()).device
    out, batch = [], []

    def flush():
        x = torch.from_numpy(np.stack(batch)).to(device).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(x).double().cpu().numpy())
        batch.clear()

    for image in images:
        image = np.asarray(image)
        batch.append(image[..., ::-1].copy() if bgr else image)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return np.concatenate(out) if out else np.zeros((0, getattr(model, "feature_dim", FEATURE_DIM)))


def stats_of(model: nn.Module, images: Iterable[np.ndarray], batch_size: int = 32, bgr: bool = False) -> FeatureStats:
    stats = FeatureStats(getattr(model, "feature_dim", FEATURE_DIM))
    batch: list[np.ndarray] = []
    for image in images:
        batch.append(image)
        if len(batch) == 256:
            stats.add(image_features(model, batch, batch_size, bgr))
            batch = []
    if batch:
        stats.add(image_features(model, batch, batch_size, bgr))
    return stats


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def read_images(folder: str | Path) -> Iterable[np.ndarray]:
    """Every picture of ``folder`` (sorted by name) as RGB uint8."""
    from PIL import Image

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"folder '{folder}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for p in files:
        with Image.open(p) as im:
            yield np.asarray(im.convert("RGB"))


def fid_between_image_folders(folder_a, folder_b, model: nn.Module, batch_size: int = 32) -> float:
    """FID between the pictures of two folders (e.g. face crops)."""
    return fid_from_stats(
        stats_of(model, read_images(folder_a), batch_size), stats_of(model, read_images(folder_b), batch_size)
    )
