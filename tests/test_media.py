"""Probing and audio decoding through ffmpeg."""

import numpy as np
import pytest
from helpers import ffmpeg

from joygen.errors import InputError
from joygen.media import load_audio, probe


def test_probe_demo_clip(demo_video):
    info = probe(demo_video, "video")
    assert (info.video.width, info.video.height, info.video.fps) == (900, 900, 25.0)
    assert info.video.codec == "h264" and info.video.rotation == 0
    assert info.audio is not None and info.audio.sample_rate == 44100 and info.audio.channels == "stereo"
    assert info.duration == pytest.approx(5.08) and info.estimated_frames == 127
    assert not info.still_image


def test_probe_audio_only(demo_audio, demo_wav):
    mp3 = probe(demo_audio, "audio")
    assert mp3.video is None and mp3.audio.codec == "mp3"
    wav = probe(demo_wav, "audio")
    assert wav.audio.sample_rate == 16000 and wav.audio.channels == "stereo"


def test_probe_rotation_swaps_displayed_size(tmp_path, media):
    wide = tmp_path / "wide.mp4"
    ffmpeg("-i", str(media["counter_mp4"]), "-c", "copy", str(wide))
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(wide), "-c", "copy", str(rotated))
    info = probe(rotated)
    assert abs(info.video.rotation) == 90
    assert (info.video.width, info.video.height) == (48, 64)


def test_probe_still_image(astronaut_png):
    info = probe(astronaut_png, "video")
    assert info.still_image and info.estimated_frames == 1
    assert (info.video.width, info.video.height) == (512, 512)


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.mp4", "does not exist"),
        (lambda d: _write(d / "empty.mp4", b""), r"empty \(0 bytes\)"),
        (lambda d: _write(d / "text.mp4", b"not a video\n"), "not a readable"),
        (lambda d: d, "is a folder"),
    ],
)
def test_bad_files_are_named_in_the_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as err:
        probe(path, "video")
    assert str(path) in str(err.value)


def test_load_audio_mono_matches_the_official_mix(golden, demo_wav):
    wav = load_audio(demo_wav)
    expected = np.load(golden / "audio" / "whisper_features.npz")["wav_mono"]
    np.testing.assert_array_equal(wav, expected)  # ffmpeg -ac 1, int16 / 32768


def test_load_audio_keeps_channels(golden, demo_wav):
    stereo = load_audio(demo_wav, mono=False)
    ref = np.load(golden / "audio" / "a2m_intermediates.npz")["wav16k_int16"]
    np.testing.assert_array_equal(stereo, ref.astype(np.float32) / 32768)


def test_load_audio_resamples_and_reads_video_tracks(media):
    a = load_audio(media["tone_stereo_44k"])
    assert a.ndim == 1 and abs(len(a) - 24000) <= 1 and a.dtype == np.float32
    assert load_audio(media["tone_stereo_44k"], mono=False).shape[1] == 2
    v = load_audio(media["face_mp4"])
    assert abs(len(v) - 16000) < 400 and np.abs(v).max() > 0.1


def test_audio_from_a_silent_video_is_refused(media):
    with pytest.raises(InputError, match="no sound track") as err:
        load_audio(media["face_noaudio_mp4"])
    assert "face_noaudio.mp4" in str(err.value)
