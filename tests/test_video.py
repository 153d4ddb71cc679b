"""Streaming frames in (truncation, ping-pong, still images) and the final encode."""

import numpy as np
import pytest
from helpers import decode_all, ffmpeg

from joygen.media import probe
from joygen.video import SourceFrames, VideoWriter


def test_truncates_when_the_video_is_longer(tmp_path, media):
    ref = decode_all(media["counter_mp4"])
    src = SourceFrames(probe(media["counter_mp4"]), tmp_path)
    got = list(src.frames(4))
    assert [i for i, _ in got] == [0, 1, 2, 3]
    for (_, frame), r in zip(got, ref):
        np.testing.assert_array_equal(frame, r)
    assert src.num_source_frames is None  # never ran out
    assert list(tmp_path.iterdir()) == []  # no spill file left behind


def test_ping_pongs_when_the_video_is_shorter(tmp_path, media):
    ref = decode_all(media["counter_mp4"])
    n_src = len(ref)
    assert n_src == 10
    src = SourceFrames(probe(media["counter_mp4"]), tmp_path)
    got = list(src.frames(25))
    expected_order = list(range(10)) + list(range(9, -1, -1)) + list(range(5))
    assert [i for i, _ in got] == expected_order
    for i, frame in got:
        np.testing.assert_array_equal(frame, ref[i])
    assert src.num_source_frames == 10
    assert list(tmp_path.iterdir()) == []


def test_ping_pong_survives_an_overstated_duration(tmp_path, media, monkeypatch):
    # If the container claims more frames than it has, the reader decodes again into a spill file.
    info = probe(media["counter_mp4"])
    monkeypatch.setattr(type(info), "estimated_frames", property(lambda self: 1000))
    got = [i for i, _ in SourceFrames(info, tmp_path).frames(13)]
    assert got == list(range(10)) + [9, 8, 7]


def test_still_image_is_held(tmp_path, astronaut_png):
    frames = list(SourceFrames(probe(astronaut_png), tmp_path).frames(5))
    assert [i for i, _ in frames] == [0] * 5
    assert frames[0][1].shape == (512, 512, 3)
    np.testing.assert_array_equal(frames[0][1], frames[4][1])


def test_rotated_video_is_decoded_upright(tmp_path, media):
    rotated = tmp_path / "rot.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(media["counter_mp4"]), "-c", "copy", str(rotated))
    (i, frame), *_ = list(SourceFrames(probe(rotated), tmp_path).frames(1))
    assert frame.shape == (64, 48, 3)
    upright = decode_all(media["counter_mp4"])[0]
    # ffmpeg's autorotation turns the picture by a quarter; either direction keeps the pixels.
    assert any(np.abs(np.rot90(upright, k).astype(int) - frame).mean() < 2 for k in (1, 3))


def test_writer_makes_h264_aac_and_pads_odd_sizes(tmp_path, media):
    out = tmp_path / "out.mp4"
    w = VideoWriter(out, 63, 47, audio_path=media["tone_wav"], crf=20, preset="ultrafast")
    for k in range(25):
        w.write(np.full((47, 63, 3), k * 10, np.uint8))
    w.close()
    info = probe(out)
    assert info.video.codec == "h264" and info.audio.codec == "aac"
    assert (info.video.width, info.video.height) == (64, 48)
    assert len(decode_all(out)) == 25


def test_writer_rejects_wrong_sizes_and_abort_removes_the_file(tmp_path):
    out = tmp_path / "x.mp4"
    w = VideoWriter(out, 32, 32, audio_path=None, preset="ultrafast")
    with pytest.raises(ValueError):
        w.write(np.zeros((16, 32, 3), np.uint8))
    w.abort()
    assert not out.exists()
