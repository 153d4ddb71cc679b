"""JoyGenPipeline through the Python API (tiny weights, CPU)."""

import json

import numpy as np
import pytest
from conftest import ffmpeg
from test_cli import count_frames

from joygen.errors import InputError, NoFaceError
from joygen.media import load_audio, probe
from joygen.timeline import Timeline


def test_audio_longer_than_video_ping_pongs(tiny_pipeline, media, tmp_path):
    out = tiny_pipeline(
        media["face_noaudio_mp4"], media["tone_stereo_44k"], tmp_path / "o.mp4", intermediates=tmp_path / "inter"
    )
    expected = Timeline.from_samples(len(load_audio(media["tone_stereo_44k"]))).num_frames
    assert out.num_frames == expected == count_frames(out.video) == 39
    assert out.report["frames"]["ping_pong"] and out.report["frames"]["source_frames"] == 25
    faces = json.loads((tmp_path / "inter" / "faces.json").read_text())
    assert [f["source_frame"] for f in faces][23:29] == [23, 24, 24, 23, 22, 21]
    assert len(list((tmp_path / "inter" / "generated256").glob("*.png"))) == 39
    assert out.tiny_weights and any("meaningless" in w for w in out.warnings)


def test_still_image_is_held_for_the_voice_track(tiny_pipeline, astronaut_png, media, tmp_path):
    out = tiny_pipeline(astronaut_png, media["tone_wav"], tmp_path / "still.mp4")
    info = probe(out.video)
    assert (info.video.width, info.video.height) == (512, 512) and info.audio is not None
    assert out.num_frames == Timeline.from_samples(16000).num_frames


def test_only_the_lower_face_changes(tiny_pipeline, media, tmp_path):
    cfg = tiny_pipeline.config.with_options(crf=0, preset="ultrafast")
    out = tiny_pipeline(
        media["face_noaudio_mp4"], media["tone_wav"], tmp_path / "o.mp4", config=cfg, intermediates=tmp_path / "inter"
    )
    from test_video import _decode_all

    src, edited = _decode_all(media["face_noaudio_mp4"])[0].astype(int), _decode_all(out.video)[0].astype(int)
    changed = np.abs(src - edited).max(axis=2) > 12  # well above the re-encode noise
    x1, y1, x2, y2 = (int(v) for v in json.loads((tmp_path / "inter" / "faces.json").read_text())[0]["face"]["box"])
    margin = 12  # the feather reaches a little past the box
    region = np.zeros_like(changed)
    region[(y1 + y2) // 2 - margin : y2 + margin, x1 - margin : x2 + margin] = True  # lower half of the box
    assert changed[region].sum() > 500
    assert changed[~region].mean() < 5e-4  # outside: only a few 4:2:0 chroma-edge pixels


def test_a_clip_without_any_face_is_refused(tiny_pipeline, media, tmp_path):
    blank = tmp_path / "blank.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=160x120:r=25", "-t", "0.5", "-pix_fmt", "yuv420p", str(blank))
    with pytest.raises(NoFaceError, match="no face found in any"):
        tiny_pipeline(blank, media["tone_wav"], tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()


def test_output_cannot_overwrite_an_input(tiny_pipeline, media, tmp_path):
    import shutil

    v = tmp_path / "v.mp4"
    shutil.copyfile(media["face_mp4"], v)
    with pytest.raises(InputError, match="is the video file itself"):
        tiny_pipeline(v, media["tone_wav"], v)


def test_default_output_goes_to_a_fresh_folder(tiny_pipeline, media):
    out = tiny_pipeline(media["face_mp4"], media["face_mp4"])  # a video with sound works as the voice track
    assert out.video.is_file() and out.video.parent.name.startswith("joygen-out-")
    assert out.video.parent != media["face_mp4"].parent
