"""Face tracks and crops for SyncNet: parity with syncnet_python's ``run_pipeline.py`` (track_shot, crop_video).

The golden input is synthetic detections (shared/golden/syncnet/crop/detections.json); the official code ran on
them unmodified. Everything is integer windows and cv2 resizes, so the checks are exact.
"""

import hashlib
import json

import cv2
import numpy as np
import pytest

from joygen.metrics.tracks import Detection, TrackConfig, box_iou, crop_face, track_faces, track_jitter


@pytest.fixture(scope="module")
def crop_fixture(golden):
    d = golden / "syncnet" / "crop"
    if not (d / "crop_golden.npz").is_file():
        pytest.skip(f"crop fixtures not found in {d}")
    frames = [golden / "vision" / "inputs" / "frame000.png", golden / "vision" / "inputs" / "frame060.png"]
    if not all(f.is_file() for f in frames):
        pytest.skip("the crop fixtures' frames (shared/golden/vision/inputs) are missing")
    return json.loads((d / "detections.json").read_text()), np.load(d / "crop_golden.npz"), frames


@pytest.fixture(scope="module")
def track(crop_fixture):
    detections, _, _ = crop_fixture
    tracks = track_faces(detections["faces"])
    assert len(tracks) == 1  # the 60x80 face (too small) and the 6-frame face (too short) are dropped
    return tracks[0]


def test_track_and_interpolation_match(track, crop_fixture):
    _, ref, _ = crop_fixture
    assert np.array_equal(track.frames, ref["track_frame"])
    assert track.detections == 116  # 4 missed frames (30-33) interpolated
    assert np.array_equal(track.bboxes, ref["track_bbox"])  # exact (scipy interp1d, as the official code)


def test_smoothing_matches(track, crop_fixture):
    _, ref, _ = crop_fixture
    x, y, s = track.smoothed()
    assert np.array_equal(x, ref["det_x"]) and np.array_equal(y, ref["det_y"]) and np.array_equal(s, ref["det_s"])


def test_every_crop_matches(track, crop_fixture):
    _, ref, frames = crop_fixture
    windows = track.crop_windows()
    assert np.array_equal(windows, ref["crop_window"])  # exact integer windows
    images = [cv2.imread(str(f)) for f in frames]
    crops = [crop_face(images[0 if f < 60 else 1], w) for f, w in zip(track.frames, windows)]
    assert [hashlib.sha256(c.tobytes()).hexdigest() for c in crops] == list(ref["crops_sha256"])  # all 120, exact
    for k, index in enumerate(ref["crops_sel_index"]):
        assert np.array_equal(crops[int(index)], ref["crops_sel_bgr_u8"][k])


def test_grey_padding_below_the_face(track, crop_fixture):
    _, _, frames = crop_fixture
    windows = track.crop_windows()
    image = cv2.imread(str(frames[1]))
    bsi, r0, r1, c0, c1 = windows[70]  # frame 70 needs padding (golden README): the crop reaches 1.8 s down
    assert r1 > image.shape[0] + bsi
    assert (crop_face(image, windows[70])[-1] == 110).all()  # its bottom row is the pad value
    assert not (crop_face(cv2.imread(str(frames[0])), windows[0])[-1] == 110).all()  # frame 0 needs none


def test_a_joined_face_hides_the_next_one_in_that_pass():
    """The official loop removes faces from the list it walks, so the face after a joined one is skipped in that
    pass. Two overlapping faces per frame therefore give two tracks, not one."""
    config = TrackConfig(min_track=2, min_face_size=10)
    a, b = (100, 100, 200, 200), (105, 100, 205, 200)
    assert box_iou(a, b) > 0.5
    frames = [[Detection(f, a, 0.99), Detection(f, b, 0.99)] for f in range(5)]
    tracks = track_faces(frames, config)
    assert len(tracks) == 2
    assert [t.bboxes[0, 0] for t in tracks] == [100, 105]


def test_a_gap_longer_than_num_failed_det_ends_the_track():
    box = (100, 100, 250, 250)
    frames = (
        [[Detection(f, box)] for f in range(10)]
        + [[] for _ in range(26)]
        + [[Detection(36 + f, box)] for f in range(10)]
    )
    tracks = track_faces(frames, TrackConfig(min_track=5))
    assert [(int(t.frames[0]), int(t.frames[-1])) for t in tracks] == [(0, 9), (36, 45)]


def test_mtcnn_finds_the_face_for_tracking(mtcnn, astronaut_png):
    from joygen.metrics.tracks import MTCNNFaces

    image = cv2.cvtColor(cv2.imread(str(astronaut_png)), cv2.COLOR_BGR2RGB)
    found = MTCNNFaces(mtcnn)([image, image])
    assert len(found) == 2 and len(found[0]) >= 1
    (x1, y1, x2, y2), score, points = found[0][0]
    assert score >= 0.9 and 150 < (x1 + x2) / 2 < 350 and 50 < (y1 + y2) / 2 < 250  # the astronaut's face
    assert len(points) == 5 and all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in points)  # eyes, nose, mouth


def test_track_jitter_measures_box_and_mouth_corner_motion_in_speech_and_silence():
    box = np.array([100.0, 100.0, 250.0, 250.0])
    points = np.array([[140, 150], [210, 150], [175, 185], [150, 215], [200, 215]], float)  # eyes, nose, mouth
    frames = []
    for f in range(12):
        head = 2.0 * (f % 2)  # the whole face shakes by (2, 2) px every other frame
        p = points + head
        p[3:, 1] += 3.0 * (f % 2) if f >= 6 else 0.0  # from frame 6 the mouth corners also move 3 px
        frames.append([Detection(f, tuple(box + head), 0.99, tuple(map(tuple, p)))])
    frames[9] = []  # a missed detection: no step through it
    (track,) = track_faces(frames, TrackConfig(min_track=5))
    voice = np.arange(12) >= 6
    j = track_jitter(track, voice)
    assert j["box_px"]["all"]["motion"] == pytest.approx(2 * np.sqrt(2), abs=1e-3)
    assert j["box_px"]["all"]["steps"] == 9  # 11 steps less the two that touch frame 9
    mouth = j["mouth_corners_px"]  # relative to the nose: the head's shake is left out
    assert mouth["silence"]["motion"] == 0.0 and mouth["speech"]["motion"] == pytest.approx(3.0)
    assert track_jitter(track, None).keys() == {"box_px", "mouth_corners_px"}
    assert "speech" not in track_jitter(track, None)["box_px"]
