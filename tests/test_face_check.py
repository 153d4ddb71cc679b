"""The app's pieces that are not the app: the face check, the public report, what the views draw (no browser)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import ffmpeg

from joygen.errors import NoFaceError
from joygen.report import public_report, public_text


def test_the_face_check_shows_what_the_edit_will_use(tiny_pipeline, demo_video):
    from joygen.face_check import check_face
    from joygen.views import face_check_images, face_check_text

    check = check_face(tiny_pipeline, demo_video)
    assert check.frame_index == 0 and check.num_frames == 127  # the first frame with a face
    x1, y1, x2, y2 = check.crop_box
    cx1, cy1, cx2, cy2 = check.context_box
    assert cx1 <= x1 < x2 <= cx2 and cy1 <= y1 < y2 <= cy2  # the blend's context holds the face box
    side = cx2 - cx1
    assert check.crop.shape == (256, 256, 3) and check.context.shape == (side, side, 3)
    assert check.mask.shape == (side, side) and check.mask.max() == 255
    assert check.mask[: int(side * 0.5) - side // 10].max() == 0  # nothing above the mouth-mask top (and feather)
    assert check.mouth_depth.shape == (256, 256) and check.mouth_depth[:128].max() == 0  # the mouth, lower half
    assert check.mouth_depth[128:].max() > 0 and check.face_depth.max() > 0
    images = face_check_images(check)
    assert len(images) == 4 and all(im.dtype == np.uint8 and im.ndim == 3 for im, _ in images)
    assert "checked in" in face_check_text(check)

    picked = check_face(tiny_pipeline, demo_video, frame=40)
    assert picked.frame_index == 40 and not np.array_equal(picked.frame, check.frame)
    assert check_face(tiny_pipeline, demo_video, frame=10_000).frame_index == 126  # past the end: the last frame


def test_the_face_check_follows_the_blend_settings(tiny_pipeline, astronaut_png):
    from joygen.face_check import check_face

    base = check_face(tiny_pipeline, astronaut_png)
    cfg = tiny_pipeline.config.with_options(expand=1.6, upper_boundary_ratio=0.8, feather=0.0)
    wide = check_face(tiny_pipeline, astronaut_png, config=cfg)
    assert wide.crop_box == base.crop_box and base.frame_index == 0  # a photo: its only frame
    assert wide.context.shape[0] > base.context.shape[0]  # more context around the same face
    side = wide.mask.shape[0]
    assert wide.mask[: int(side * 0.8)].max() == 0 and wide.mask[int(side * 0.8) :].max() == 255  # a sharp top


def test_the_face_check_says_where_no_face_was_found(tiny_pipeline, tmp_path):
    from joygen.face_check import check_face, first_face_frame

    blank = tmp_path / "empty room.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=beige:s=160x120:r=25", "-t", "0.4", "-pix_fmt", "yuv420p", str(blank))
    with pytest.raises(NoFaceError, match="no face found in the first 2 s of '.*empty room.mp4'"):
        check_face(tiny_pipeline, blank)
    with pytest.raises(NoFaceError, match="no face found in frame 3"):
        check_face(tiny_pipeline, blank, frame=3)
    assert first_face_frame(tiny_pipeline, blank) is None


def _report(tmp_path) -> dict:
    """A report as `build_report` makes it, with the paths a server would hold."""
    upload = "/tmp/gradio/1f2e3d/my clip.mp4"
    return {
        "inputs": {"video": {"path": upload, "size_bytes": 10}, "audio": {"path": "/tmp/gradio/ab/voice.mp3"}},
        "output": {"path": str(tmp_path / "joygen-app-x" / "edited.mp4"), "frames": 25},
        "config": {"video": {"cache_dir": "/home/someone/.cache/joygen", "crf": 18}},
        "warnings": ["the per-video cache was not stored (cannot create '/var/cache/joygen/videos/ab'): full"],
        "weights": [
            {
                "name": "unet",
                "source": "local folder /srv/models/joygen",
                "files": {"config.json": "/srv/models/joygen/unet/config.json"},
                "sha256": {"config.json": "ab" * 32},
            }
        ],
        "sync": {"edited": {"weights": {"path": "C:\\models\\syncnet_v2.model"}}, "summary": "LSE-C 1.0/2.0"},
        "versions": {"joygen": "0.1.0", "platform": "Linux-6.1-x86_64-with-glibc2.36"},
    }


def test_the_public_report_has_no_server_paths(tmp_path):
    report = _report(tmp_path)
    public = public_report(
        report, {"/tmp/gradio/1f2e3d/my clip.mp4": "my clip.mp4", "/tmp/gradio/ab/voice.mp3": "v.mp3"}
    )
    text = json.dumps(public)
    assert re.search(r'["\s(=]/[A-Za-z]', text) is None and "C:\\\\" not in text  # no absolute path at all
    assert public["inputs"]["video"]["path"] == "my clip.mp4" and public["inputs"]["audio"]["path"] == "v.mp3"
    assert public["output"]["path"] == "edited.mp4" and public["config"]["video"] == {"cache_dir": None, "crf": 18}
    assert public["weights"][0]["files"] == {"config.json": "config.json"}  # file names and hashes stay
    assert public["weights"][0]["sha256"] == report["weights"][0]["sha256"]
    assert public["sync"]["edited"]["weights"]["path"] == "syncnet_v2.model"
    assert public["sync"]["summary"] == "LSE-C 1.0/2.0"  # a slash inside words is not a path
    assert "platform" not in public["versions"] and public["versions"]["joygen"] == "0.1.0"
    assert report["versions"]["platform"]  # the original is left as it was
    assert public_text("cannot read '/tmp/gradio/x/a b.wav'", {"/tmp/gradio/x/a b.wav": "a b.wav"}) == (
        "cannot read 'a b.wav'"
    )


def test_the_run_clock_counts_on_and_estimates_what_is_left():
    from joygen.views import RunClock

    now = [100.0]
    clock = RunClock(lambda: now[0])
    clock.update("audio_features", 0, 1)
    now[0] = 104.0
    clock.update("edit", 0, 100)
    assert clock.seconds_left() is None and "0 / 100 frames" in clock.text()
    now[0] = 114.0
    clock.update("edit", 20, 100)  # 20 frames in 10 s
    assert clock.seconds_left() == pytest.approx(40.0) and clock.fraction == pytest.approx(0.2)
    assert "20 / 100 frames · 14 s elapsed · about 40 s left" in clock.text()
    now[0] = 130.0
    clock.update("encode", 0, 1)
    assert clock.elapsed == pytest.approx(30.0) and clock.fraction is None  # elapsed never restarts
    assert clock.text().startswith("Encoding the video")
    clock.update("lip_sync", 0, 2)  # the lip sync counts its two videos and estimates from the first
    assert clock.seconds_left() is None and "time left: known once the edit is scored" in clock.text()
    now[0] = 160.0
    clock.update("lip_sync", 1, 2)  # the edit scored in 30 s
    assert clock.seconds_left() == pytest.approx(30.0) and clock.fraction == pytest.approx(0.5)
    assert "1 / 2 videos scored" in clock.text() and "about 30 s left for the lip sync" in clock.text()


def test_the_lip_plot_and_the_depth_panels_read_well():
    from joygen.outputs import DepthPreview
    from joygen.views import LEGEND_HEIGHT, SILENCE_SHADE, STAGE1_COLOUR, depth_panels, lip_plot

    n = 50
    trajectory = {"fps": 25, "loudness_db": np.linspace(-70, -10, n).tolist(), "mouth_open_mm": [4.0] * n}
    plain = lip_plot(trajectory)
    shaded = lip_plot({**trajectory, "voice_active": [k >= 25 for k in range(n)]})  # issue 16's per-frame flag
    assert plain.shape == shaded.shape and plain.dtype == np.uint8
    shade = np.all(shaded == SILENCE_SHADE, axis=-1)
    assert shade[:, : shaded.shape[1] // 3].sum() > 1000 and np.all(plain == SILENCE_SHADE, axis=-1).sum() < 100
    assert lip_plot({"fps": 25, "loudness_db": [-20.0] * n}) is not None  # the no-depth mode: loudness alone
    assert lip_plot(None) is None
    # stage 1's own opening is a second, thin line only where smoothing or a silence changed what is drawn
    same = lip_plot({**trajectory, "mouth_open_stage1_mm": [4.0] * n})
    closed = lip_plot({**trajectory, "mouth_open_stage1_mm": [8.0] * n})
    assert not np.all(same == STAGE1_COLOUR, axis=-1).any() and np.all(closed == STAGE1_COLOUR, axis=-1).sum() > 500

    depth = np.zeros((256, 256, 3), np.uint8)
    depth[160:200, 100:160] = 200
    face = np.full((256, 256, 3), 128, np.uint8)
    ((image, caption),) = depth_panels([DepthPreview(25, face, depth, (0, 0, 100, 200))])
    assert caption == "frame 25 (1.00 s)"
    assert image.shape[0] > 256 and image.shape[1] < 3 * 256  # a tall face box keeps its aspect
    legend, panel = image[:LEGEND_HEIGHT], image[LEGEND_HEIGHT:]  # the legend on top: captions cover the bottom
    assert (
        panel.shape[0] == 256 and legend[4, 2, 2] > legend[4, 2, 0] and legend[4, -3, 0] > legend[4, -3, 2]
    )  # far blue, near red
    assert (panel[..., 0].astype(int) - panel[..., 2]).max() > 50  # warm colours where the mouth is near


def test_the_live_frame_says_why_a_frame_is_unedited():
    from joygen.views import frame_preview

    image = np.zeros((90, 160, 3), np.uint8)
    _, caption = frame_preview({"frame": 25, "source": image, "edited": image, "kept": False})
    assert caption == "original | edited, frame 25 (1.00 s)"
    _, caption = frame_preview({"frame": 25, "source": image, "edited": None, "kept": True})
    assert caption.endswith("(silent voice: the video's own mouth)")
    _, caption = frame_preview({"frame": 25, "source": image, "edited": None, "kept": False})
    assert caption.endswith("(no face: passed through)")
