"""The depth rasteriser and the official depth post-processing (shared/golden/vision/depth)."""

import numpy as np
import pytest
import torch

from joygen.face3d.bfm import FaceModel
from joygen.face3d.reconstruction import Alignment
from joygen.face3d.render import (
    depth_in_frame,
    landmarks_in_frame,
    lip_mask,
    mouth_depth_image,
    normalize_depth,
    rasterize,
)


@pytest.fixture(scope="module")
def mini(golden):
    return FaceModel.from_folder(golden / "vision" / "mini_bfm")


@pytest.fixture(scope="module")
def ref(golden):
    return np.load(golden / "vision" / "depth" / "depth224.npz")


@pytest.fixture(scope="module")
def raster(mini, ref):
    with torch.no_grad():
        vertices = mini.camera_vertices(torch.from_numpy(ref["coeffs"]))
    return rasterize(vertices, mini.triangles), vertices


def test_coverage_and_triangles_are_exact(raster, ref):
    r, _ = raster
    np.testing.assert_array_equal(r.mask.numpy(), ref["mask"].astype(bool))
    np.testing.assert_array_equal(r.triangle.numpy(), ref["tri_id"])
    assert np.abs(r.depth.numpy() - ref["depth"]).max() <= 5e-6


def test_eight_bit_depth(raster, ref):
    u8 = normalize_depth(raster[0].depth)
    diff = np.abs(u8.astype(int) - ref["depth_u8"])
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.001
    assert u8.max() == 255 and (u8[~ref["mask"].astype(bool)] == 0).all()


def test_landmarks_of_the_edited_mesh(mini, raster, ref):
    assert np.abs(mini.landmarks468(raster[1]).numpy() - ref["lm468_img"]).max() <= 1e-3


def test_warp_into_the_frame_crop_lip_mask_and_editor_image(golden, ref):
    p = np.load(golden / "vision" / "depth" / "pasteback_frame000.npz")
    cp = p["crop_params"]
    al = Alignment(int(cp[0]), int(cp[1]), float(cp[2]), int(cp[3]), int(cp[4]), (0.0, 0.0))
    np.testing.assert_array_equal(al.crop_params, cp)
    x1, y1, x2, y2 = (int(v) for v in p["box_select"])
    for k in range(5):
        frame = depth_in_frame(ref["depth_u8"][k], al)
        np.testing.assert_array_equal(frame, p["depth_frame"][k])
        crop = frame[y1:y2, x1:x2]
        np.testing.assert_array_equal(crop, p["depth_crop"][k])
        lm = landmarks_in_frame(ref["lm468_img"][k], al) - p["box_select"][:2].astype(np.float64)
        np.testing.assert_allclose(lm, p["lm468_crop"][k], atol=1e-9)
        np.testing.assert_array_equal(lip_mask(crop.shape, lm), p["lip_mask"][k])
        np.testing.assert_array_equal(mouth_depth_image(crop, lm), p["depth256_top_zeroed"][k])


def _plane(z_of_xy, size=224):
    """Two triangles covering the crop, vertices at the given camera depth."""
    corners = np.array([[-1.5, -1.5], [1.5, -1.5], [1.5, 1.5], [-1.5, 1.5]])
    v = np.array([[x, y, z_of_xy(x, y)] for x, y in corners], np.float32)
    return torch.from_numpy(v)[None], torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_fronto_parallel_plane_has_constant_depth():
    v, f = _plane(lambda x, y: 10.0)
    r = rasterize(v, f)
    assert r.mask.all()
    assert torch.allclose(r.depth, torch.tensor(10.0))


def test_tilted_plane_depth_is_perspective_correct():
    v, f = _plane(lambda x, y: 10.0 + 0.5 * x)  # z_cam = 10 + 0.5 x
    r = rasterize(v, f)
    cols = torch.arange(224, dtype=torch.float64) + 0.5
    u = (cols - 112) / 1015  # x / z of the pixel's ray
    expected = 10.0 / (1 - 0.5 * u)  # ray-plane intersection
    assert torch.allclose(r.depth[0, 100].double(), expected, atol=1e-5)


def test_nearer_triangle_wins_whatever_the_order_and_winding():
    tri_far = [[-1, -1, 11.0], [1, -1, 11.0], [0, 1, 11.0]]
    tri_near = [[-1, 1, 9.0], [0, -1, 9.0], [1, 1, 9.0]]  # opposite winding
    v = torch.tensor([tri_far + tri_near], dtype=torch.float32)
    for faces in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):
        r = rasterize(v, torch.tensor(faces))
        assert r.depth[0, 112, 112] == pytest.approx(9.0)


def test_random_small_meshes_match_a_brute_force_loop():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(1, 30, 2, generator=gen) * 0.6 - 0.3
    v = torch.cat([xy, 9.5 + torch.rand(1, 30, 1, generator=gen)], dim=2)
    f = torch.randint(0, 30, (40, 3), generator=gen)
    r = rasterize(v, f, size=32)
    size, half = 32, 16
    sx = ((v[0, :, 0] * 9.0625).double() / v[0, :, 2].double() + 1) * half
    sy = ((-v[0, :, 1] * 9.0625).double() / v[0, :, 2].double() + 1) * half
    for i in range(size):
        for j in range(size):
            px, py, best = j + 0.5, i + 0.5, (np.inf, -1)
            for t, (a, b, c) in enumerate(f.tolist()):
                area = (sx[b] - sx[a]) * (sy[c] - sy[a]) - (sx[c] - sx[a]) * (sy[b] - sy[a])
                if area == 0:
                    continue
                w = [((sx[q] - px) * (sy[s] - py) - (sx[s] - px) * (sy[q] - py)) * (1 if area > 0 else -1)
                     for q, s in ((b, c), (c, a), (a, b))]  # fmt: skip
                if min(w) >= 0:
                    z = abs(area) / sum(wk / v[0, n, 2].double() for wk, n in zip(w, (a, b, c)))
                    if (z, t) < best:
                        best = (float(z), t)
            assert r.triangle[0, i, j].item() == best[1]
            if best[1] >= 0:
                assert r.depth[0, i, j].item() == pytest.approx(best[0], abs=1e-5)


def bfm_sized_mesh(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A face-shaped mesh of the real BFM front size: 35 709 vertices, 70 789 triangles."""
    n = 189
    gx, gy = np.meshgrid(np.linspace(-0.75, 0.75, n), np.linspace(-0.9, 0.9, n))
    z = 0.45 * np.sqrt(np.clip(1 - (gx / 0.8) ** 2 - (gy / 0.95) ** 2, 0, None)) + 0.2 * np.exp(-(gx**2 + gy**2) / 0.01)
    verts = np.stack([gx.ravel(), gy.ravel(), 10 - z.ravel()], 1)[:35709]  # drop 12 corner vertices
    ids = np.arange(n * n).reshape(n, n)
    tri = np.concatenate([np.stack([ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel()], 1),
                          np.stack([ids[1:, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, 1:].ravel()], 1)])  # fmt: skip
    tri = tri[(tri < 35709).all(1)]
    tri = np.concatenate([tri, tri[: 70789 - len(tri)]])  # duplicates top it up to the real count
    assert verts.shape == (35709, 3) and tri.shape == (70789, 3)
    v = torch.from_numpy(verts.astype(np.float32))[None].repeat(batch, 1, 1)
    v[..., 0] += torch.linspace(-0.05, 0.05, batch)[:, None]  # frames differ a little
    return v, torch.from_numpy(tri)


def test_a_real_size_mesh_renders_the_same_batched_and_alone():
    # Speed is measured by `python -m joygen bench` (docs/performance.md), never asserted here.
    v, f = bfm_sized_mesh(3)
    batched = rasterize(v, f)
    assert batched.mask[0].sum() > 15000  # the face covers the crop
    for k in range(3):
        alone = rasterize(v[k : k + 1], f)
        assert torch.equal(alone.triangle[0], batched.triangle[k])  # integer ids: exact by construction
        # the same float operations per pixel; only the batch layout differs
        assert torch.allclose(alone.depth[0], batched.depth[k], rtol=0, atol=1e-6)
