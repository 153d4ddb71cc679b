"""Paste-back: byte parity with the official blending (shared/golden/vision/blend)."""

import numpy as np
import pytest
from PIL import Image

from joygen.boxes import context_box, crop_padded
from joygen.editor.face_parsing import FACE_CLASSES
from joygen.editor.paste_back import blend_mask, composite, feather_kernel, paste_back


@pytest.fixture(scope="module")
def ref(golden):
    return np.load(golden / "vision" / "blend" / "blend_frame000.npz")


@pytest.fixture(scope="module")
def frame(golden):
    return np.asarray(Image.open(golden / "vision" / "inputs" / "frame000.png").convert("RGB"))


def parsing_of(label512):
    face = (label512 >= FACE_CLASSES.start) & (label512 < FACE_CLASSES.stop)
    return (face * 255).astype(np.uint8)


def test_context_box_and_kernel(ref):
    box = tuple(int(v) for v in ref["box"])
    assert context_box(box) == tuple(int(v) for v in ref["crop_box"])
    assert feather_kernel(710) == int(ref["blur_kernel"]) == 71


def test_mask_steps(ref):
    box = tuple(int(v) for v in ref["box"])
    parsing = parsing_of(ref["label512"])
    np.testing.assert_array_equal(parsing, ref["parsing512"])
    np.testing.assert_array_equal(blend_mask(parsing, box, context_box(box)), ref["mask_blur"])


def test_blended_frame_is_byte_identical(ref, frame):
    box = tuple(int(v) for v in ref["box"])
    face = np.ascontiguousarray(ref["generated256_bgr"][..., ::-1])
    out = paste_back(frame, face, box, parsing_of(ref["label512"]))
    np.testing.assert_array_equal(out, ref["blended_bgr"][..., ::-1])
    assert out is not frame


def test_pixels_outside_the_feathered_mask_keep_the_source(ref, frame):
    box = tuple(int(v) for v in ref["box"])
    face = np.full((256, 256, 3), 7, np.uint8)
    out = paste_back(frame, face, box, parsing_of(ref["label512"]))
    ctx = context_box(box)
    mask = np.zeros(frame.shape[:2], bool)
    m = blend_mask(parsing_of(ref["label512"]), box, ctx) > 0
    mask[ctx[1] : ctx[3], ctx[0] : ctx[2]] = m[: 900 - ctx[1], : 900 - ctx[0]]
    np.testing.assert_array_equal(out[~mask], frame[~mask])
    assert (out[mask] != frame[mask]).any()


def test_boxes_past_the_frame_edge(frame):
    box = (-40, 700, 300, 1040)  # leaves the frame left and bottom
    parsing = np.full((512, 512), 255, np.uint8)
    out = paste_back(frame, np.zeros((256, 256, 3), np.uint8), box, parsing)
    assert out.shape == frame.shape
    assert crop_padded(frame, (-5, -5, 5, 5))[:5].sum() == 0


def test_composite_matches_pil_paste():
    rng = np.random.default_rng(0)
    base, top = rng.integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    pil = Image.fromarray(base)
    pil.paste(Image.fromarray(top), (0, 0), Image.fromarray(mask))
    np.testing.assert_array_equal(composite(base, top, mask), np.asarray(pil))


def test_edit_fader_fades_around_unedited_frames():
    from joygen.editor.paste_back import EditFader

    src = [np.zeros((2, 2, 3), np.uint8) for _ in range(10)]
    edit = np.full((2, 2, 3), 200, np.uint8)
    fader = EditFader(span=3)
    out = []
    for i in range(10):
        out += fader.push(src[i], None if i == 5 else edit)
    out += fader.flush()
    values = [int(frame[0, 0, 0]) for _, frame in out]
    assert len(out) == 10 and all(s is src[i] for i, (s, _) in enumerate(out))
    # 3 frames fade in and out (1/4, 2/4, 3/4 of the edit) around the unedited frame 5, which stays the source
    assert values == [200, 200, 150, 100, 50, 0, 50, 100, 150, 200]
