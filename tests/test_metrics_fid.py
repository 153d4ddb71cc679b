"""FID: the Fréchet distance against closed forms, the streaming statistics, and the FID Inception's layout."""

import numpy as np
import pytest
import torch

from joygen.metrics.fid import (
    FeatureStats,
    FIDInception,
    fid_between_image_folders,
    fid_from_stats,
    frechet_distance,
    image_features,
    load_inception,
)


def test_two_gaussians_with_diagonal_covariances():
    # closed form: |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert abs(got - expected) < 1e-10  # float64 rounding of a value of 12.25; measured 0


def test_full_covariances_in_a_shared_basis():
    # S1 = R diag(a) R^T, S2 = R diag(b) R^T commute: the same closed form holds in any rotation R
    rng = np.random.default_rng(0)
    r, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a, b = rng.uniform(0.5, 3, 6), rng.uniform(0.5, 3, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, r @ np.diag(a) @ r.T, mu2, r @ np.diag(b) @ r.T)
    assert abs(got - expected) < 1e-9  # sqrtm round-off on a value of 18; measured 1.1e-14


def test_identical_sets_are_at_distance_zero():
    rng = np.random.default_rng(1)
    s = np.cov(rng.standard_normal((50, 5)), rowvar=False)
    assert abs(frechet_distance(np.ones(5), s, np.ones(5), s)) < 1e-10  # measured 8.9e-15


def test_streamed_statistics_equal_numpys():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 8)) * 3 + 1
    stats = FeatureStats(8)
    for chunk in np.array_split(x, 7):
        stats.add(chunk)
    assert stats.n == 300
    assert np.abs(stats.mean - x.mean(0)).max() < 1e-12  # float64 sums of 300 values ~10
    assert np.abs(stats.cov - np.cov(x, rowvar=False)).max() < 1e-10
    merged = FeatureStats(8)
    merged.merge(FeatureStats.from_arrays(stats.to_arrays()))
    assert fid_from_stats(merged, stats) == pytest.approx(0.0, abs=1e-8)


def test_fid_inception_has_the_pytorch_fid_layout():
    state = FIDInception().state_dict()
    # 94 conv+BN blocks x 6 entries (num_batches_tracked included) + fc: the 566 entries of the released file
    assert len(state) == 566
    for key, shape in {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7c.branch3x3dbl_3b.bn.running_var": (384,),
        "fc.weight": (1008, 2048),
    }.items():
        assert tuple(state[key].shape) == shape, key
    # its float32 payload is just under the released file's 95,628,359 bytes (pickle overhead ~86 kB)
    payload = sum(v.numel() * v.element_size() for v in state.values() if v.dtype == torch.float32)
    assert 0 < 95_628_359 - payload < 200_000


def test_tiny_stand_in_computes_fid_between_folders(tmp_path):
    from PIL import Image

    from joygen.metrics.fid import TINY_WIDTH_DIVISOR

    torch.manual_seed(0)
    torch.save(FIDInception(TINY_WIDTH_DIVISOR).state_dict(), tmp_path / "tiny.pth")
    model = load_inception(tmp_path / "tiny.pth")  # same interface and key names, 1/16 of the channels
    rng = np.random.default_rng(3)
    for name, shift in (("a", 0), ("b", 60)):
        (tmp_path / name).mkdir()
        for i in range(6):
            pixels = np.clip(rng.normal(120 + shift, 40, (48, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    same = fid_between_image_folders(tmp_path / "a", tmp_path / "a", model)
    other = fid_between_image_folders(tmp_path / "a", tmp_path / "b", model)
    assert np.isfinite(other) and other > 0
    assert abs(same) < 1e-6 * max(1.0, other)  # sqrtm round-off only
    feats = image_features(model, [np.zeros((32, 40, 3), np.uint8)] * 3)
    assert feats.shape == (3, model.feature_dim)
