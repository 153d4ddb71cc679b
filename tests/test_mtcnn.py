"""MTCNN: parity with facenet-pytorch's detector as the official stage 2 calls it."""

import numpy as np
import pytest
from PIL import Image

from joygen.face3d.detection import FaceDetector

NAMES = ["astronaut", "frame000", "frame060"]


def load(golden, name):
    return np.asarray(Image.open(golden / "vision" / "inputs" / f"{name}.png").convert("RGB"))


@pytest.mark.parametrize("name", NAMES)
def test_box_points_and_probability(golden, mtcnn, name):
    ref = np.load(golden / "vision" / "align" / f"{name}.npz")
    det = mtcnn.detect(load(golden, name)[None])[0]
    assert len(det.boxes) == int(ref["mtcnn_num_faces"])
    assert np.abs(det.boxes[0] - ref["mtcnn_box"]).max() <= 1e-3
    assert np.abs(det.points[0] - ref["mtcnn_points"]).max() <= 1e-3
    assert abs(det.probs[0] - ref["mtcnn_prob"]) <= 1e-5


def test_batch_gives_the_same_as_single_frames(golden, mtcnn):
    frames = np.stack([load(golden, "frame000"), load(golden, "frame060"), load(golden, "frame000")])
    batch = mtcnn.detect(frames)
    for frame, det in zip(frames, batch):
        single = mtcnn.detect(frame[None])[0]
        np.testing.assert_allclose(det.boxes, single.boxes, atol=1e-3)
        np.testing.assert_allclose(det.points, single.points, atol=1e-3)


def test_detector_returns_none_without_a_face(golden, mtcnn):
    blank = np.full((240, 320, 3), 128, np.uint8)
    faces = FaceDetector(mtcnn)([blank, blank])
    assert faces == [None, None]
    face = FaceDetector(mtcnn)([load(golden, "astronaut")])[0]
    assert face is not None and face.crop_box == tuple(int(v) for v in face.box)
