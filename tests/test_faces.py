"""Face boxes: MTCNN on real images, DWPose plumbing, the official landmark-box rule and its gate."""

import numpy as np
import pytest
from PIL import Image

from joygen.boxes import iou
from joygen.face3d.detection import FaceDetector, landmark_box, select_box
from joygen.face3d.dwpose import FLIP_INDICES, INPUT_SIZE, DWPose, frame_box, warp_matrix
from joygen.media import probe
from joygen.video import SourceFrames


def test_real_mtcnn_finds_the_astronaut(mtcnn):
    from skimage import data

    faces = FaceDetector(mtcnn)([data.astronaut()])
    assert faces[0] is not None and faces[0].score > 0.99
    x1, y1, x2, y2 = faces[0].crop_box
    assert 150 < x1 < 200 and 40 < y1 < 90 and 250 < x2 < 290 and 150 < y2 < 200


@pytest.mark.slow
def test_real_mtcnn_finds_the_face_on_every_demo_frame(mtcnn, demo_video, tmp_path):
    detector = FaceDetector(mtcnn)
    frames = [f for _, f in SourceFrames(probe(demo_video), tmp_path).frames(127)]
    faces = [face for k in range(0, 127, 16) for face in detector(frames[k : k + 16])]
    assert len(faces) == 127 and all(f is not None for f in faces)


def _synthetic_68(cx=400.0, cy=400.0, s=100.0):
    """A plausible 68-point layout (jaw arc, brows, nose, eyes, lips) around (cx, cy)."""
    t = np.linspace(np.pi * 1.05, np.pi * 1.95, 17)
    jaw = np.stack([np.cos(t) * 1.3, -np.sin(t) * 1.5 - 0.2], 1)
    rest = np.stack([np.linspace(-0.9, 0.9, 51), np.concatenate([np.full(10, -0.9), np.linspace(-0.6, 0.2, 4),
                     np.full(5, 0.3), np.full(12, -0.4), np.full(20, 0.8)])], 1)  # fmt: skip
    pts = np.concatenate([jaw, rest])
    pts[29] = [0.0, 0.0]
    return pts * s + [cx, cy]


def test_landmark_box_mirrors_the_nose_bridge_to_the_chin():
    lm = _synthetic_68()
    x1, y1, x2, y2 = landmark_box(lm)
    assert (x1, x2, y2) == (int(lm[:, 0].min()), int(lm[:, 0].max()), int(lm[:, 1].max()))
    assert y1 == int(lm[29, 1]) - (y2 - int(lm[29, 1]))
    assert landmark_box(lm - [500, 0]) is None  # left of the frame: the official falls back


def test_gate_uses_landmarks_only_when_they_agree_with_mtcnn():
    lm = _synthetic_68()
    extent = (lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max())
    box, source = select_box(extent, lm)
    assert source == "landmarks" and box == tuple(float(v) for v in landmark_box(lm))
    far = (0.0, 0.0, 80.0, 80.0)  # MTCNN saw a different face
    assert iou(far, extent) < 0.5
    assert select_box(far, lm) == (far, "mtcnn")
    assert select_box(far, None) == (far, "mtcnn")


def test_warp_matrix_maps_the_box_centre_to_the_input_centre():
    center, scale = frame_box(900, 600)
    assert scale[0] / scale[1] == pytest.approx(INPUT_SIZE[0] / INPUT_SIZE[1])
    assert scale[0] >= 900 * 1.25 and scale[1] >= 600 * 1.25
    m = warp_matrix(center, scale)
    np.testing.assert_allclose(m @ [450, 300, 1], [144, 192], atol=1e-4)


def test_flip_indices_swap_left_and_right():
    flip = np.array(FLIP_INDICES)
    assert len(flip) == 133 and np.array_equal(flip[flip], np.arange(133))
    assert flip[23 + 36] == 23 + 45 and flip[23 + 30] == 23 + 30 and flip[91] == 112


def test_tiny_dwpose_runs_batched_on_frames(tiny_weights, astronaut_png):
    model = DWPose(tiny_weights / "dwpose" / "dw-ll_ucoco_384.onnx")
    frame = np.asarray(Image.open(astronaut_png))
    both = model([frame, frame[:, ::-1].copy()])
    assert both.shape == (2, 68, 2) and both.dtype == np.float32
    np.testing.assert_allclose(model([frame])[0], both[0], atol=1e-3)
    assert model.fixed_batch is None


def test_detector_with_dwpose_falls_back_when_landmarks_disagree(tiny_weights, mtcnn, astronaut_png):
    # the tiny DWPose's points are meaningless, so the gate keeps the MTCNN box
    detector = FaceDetector(mtcnn, DWPose(tiny_weights / "dwpose" / "dw-ll_ucoco_384.onnx"))
    face = detector([np.asarray(Image.open(astronaut_png))])[0]
    assert face.box_source == "mtcnn" and face.box == face.mtcnn_box
    assert face.landmarks68.shape == (68, 2)
