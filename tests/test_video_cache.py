"""The per-video cache: round trips, chunks, misses."""

import numpy as np

from joygen.face3d.detection import Face
from joygen.face3d.reconstruction import Alignment
from joygen.video_cache import CHUNK, FrameAnalysis, VideoCache


def _work(seed: int, with_coeffs: bool = True) -> FrameAnalysis:
    rng = np.random.default_rng(seed)
    face = Face((10.5, 20.25, 110.0, 140.0), rng.random((5, 2), dtype=np.float32), 0.99, (11.0, 21.0, 109.0, 139.0),
                rng.random((68, 2), dtype=np.float32), "landmarks")  # fmt: skip
    parsing = (rng.random((512, 512)) > 0.5).astype(np.uint8) * 255
    coeffs = rng.random(257, dtype=np.float32) if with_coeffs else None
    al = Alignment(900, 900, 0.315, 34, -17, (449.5, 450.25)) if with_coeffs else None
    return FrameAnalysis(face, rng.random((8, 32, 32), dtype=np.float32), parsing, coeffs, al)


def test_round_trip_is_exact(tmp_path):
    cache = VideoCache(tmp_path, "ab" * 32, {"x": 1})
    works = {i: _work(i) for i in range(CHUNK + 3)}
    works[5] = FrameAnalysis(None)  # a frame without a face
    for i, w in works.items():
        cache.put(i, w)
    cache.flush()
    again = VideoCache(tmp_path, "ab" * 32, {"x": 1})
    for i, w in works.items():
        got = again.get(i, need_coeffs=True)
        if w.face is None:
            assert got.face is None
            continue
        assert (got.face.box, got.face.mtcnn_box, got.face.score) == (
            w.face.box,
            w.face.mtcnn_box,
            np.float32(w.face.score),
        )
        assert got.face.box_source == w.face.box_source
        np.testing.assert_array_equal(got.face.points, w.face.points)
        np.testing.assert_array_equal(got.face.landmarks68, w.face.landmarks68)
        np.testing.assert_array_equal(got.latents, w.latents)
        np.testing.assert_array_equal(got.parsing, w.parsing)
        np.testing.assert_array_equal(got.coeffs, w.coeffs)
        assert got.alignment == w.alignment
    assert again.get(CHUNK + 3, need_coeffs=False) is None  # never stored
    assert len(list(again.folder.glob("chunk_*.npz"))) == 2


def test_other_settings_or_videos_do_not_share_entries(tmp_path):
    a = VideoCache(tmp_path, "ab" * 32, {"x": 1})
    a.put(0, _work(0))
    a.flush()
    assert VideoCache(tmp_path, "ab" * 32, {"x": 2}).get(0, False) is None
    assert VideoCache(tmp_path, "cd" * 32, {"x": 1}).get(0, False) is None


def test_entries_without_3d_fits_miss_when_depth_is_needed(tmp_path):
    cache = VideoCache(tmp_path, "ab" * 32, {})
    cache.put(0, _work(0, with_coeffs=False))
    cache.flush()
    assert cache.get(0, need_coeffs=False) is not None
    assert cache.get(0, need_coeffs=True) is None


def test_a_damaged_chunk_is_a_miss(tmp_path):
    cache = VideoCache(tmp_path, "ab" * 32, {})
    cache.put(0, _work(0))
    cache.flush()
    (cache.folder / "chunk_000000.npz").write_bytes(b"broken")
    assert VideoCache(tmp_path, "ab" * 32, {}).get(0, need_coeffs=True) is None
