"""The command line, end to end on the CPU with the tiny weights, and its handling of bad input."""

import json
import shutil

import numpy as np
import pytest
from helpers import GOLDEN, count_frames, ffmpeg, run_cli, run_edit

from joygen.media import probe


@pytest.mark.slow
def test_the_readme_command_on_the_demo_clip(tmp_path, demo_video, demo_audio):
    made = run_cli("weights", "tiny", "W", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    if (GOLDEN / "vision" / "mini_bfm").is_dir():  # the 3D stage's face model: the fixtures' mini-BFM
        shutil.rmtree(tmp_path / "W" / "bfm")
        shutil.copytree(GOLDEN / "vision" / "mini_bfm", tmp_path / "W" / "bfm")
    run = run_edit(
        str(demo_video), str(demo_audio), "W", "o.mp4", "--report", "r.json", "--intermediates", "inter", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert "meaningless" in run.stderr  # tiny weights are announced
    assert "lip sync (SyncNet): LSE-C" in run.stdout  # the tiny set has a (tiny) SyncNet: the edit is scored
    info = probe(tmp_path / "o.mp4")
    assert info.video.codec == "h264" and info.audio.codec == "aac"
    assert (info.video.width, info.video.height) == (900, 900)
    assert count_frames(tmp_path / "o.mp4") == 127  # min(128 expression rows, 127 Whisper chunks)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames"]["output_frames"] == 127 and report["frames"]["expression_frames"] == 128
    for stage in ("probe", "audio_features", "video_decode", "face_detection", "generate", "blend", "video_encode"):
        assert report["timings_s"][stage] > 0
    assert report["tiny_weights"] is True
    assert all(len(h) == 64 for w in report["weights"] for h in w["sha256"].values())
    assert report["inputs"]["video"]["video"]["width"] == 900
    # all three stages ran: audio-driven expressions, one mouth depth map per frame, the edit
    assert report["mode"]["depth"] is True and report["mode"]["expression_rows"] == 128
    assert len(list((tmp_path / "inter" / "depth").glob("*.png"))) == 127
    for stage in ("audio_to_motion", "mouth_depth"):
        assert report["timings_s"][stage] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["W", "inter", "o.mp4", "r.json"]


def _bad(tmp_path, media, kind):
    d = tmp_path / "inputs"
    d.mkdir(exist_ok=True)
    if kind == "missing":
        return d / "nope.mp4", media["tone_wav"]
    if kind == "empty":
        (d / "empty.mp4").write_bytes(b"")
        return d / "empty.mp4", media["tone_wav"]
    if kind == "text":
        (d / "notes.mp4").write_text("this is not a video\n")
        return d / "notes.mp4", media["tone_wav"]
    if kind == "silent-audio":
        shutil.copyfile(media["face_noaudio_mp4"], d / "silent clip.mp4")
        return media["face_mp4"], d / "silent clip.mp4"
    if kind == "weird-name":
        weird = d / 'it\'s a "test" $(touch PWNED) `id`.mp4'
        weird.write_bytes(b"")
        return weird, media["tone_wav"]
    raise AssertionError(kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "empty", "text", "silent-audio", "weird-name"])
def test_bad_input_gives_one_clear_line(tmp_path, media, tiny_weights, kind):
    video, audio = _bad(tmp_path, media, kind)
    bad_file = audio if kind == "silent-audio" else video
    before = sorted(p.name for p in (tmp_path / "inputs").iterdir())
    run = run_edit(str(video), str(audio), str(tiny_weights), str(tmp_path / "out" / "o.mp4"), cwd=tmp_path)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("joygen: error:")]
    assert len(errors) == 1, run.stderr
    assert str(bad_file) in errors[0]
    assert sorted(p.name for p in (tmp_path / "inputs").iterdir()) == before  # nothing beside the input
    assert not (tmp_path / "out").exists() and not (tmp_path / "PWNED").exists()


@pytest.mark.slow
def test_names_with_spaces_quotes_and_dollar_parens_work(tmp_path, media, tiny_weights):
    d = tmp_path / "in put"
    d.mkdir()
    video = d / "clip 'one' \"two\" $(touch PWNED).mp4"
    audio = d / "voice $(id) `x`.wav"
    shutil.copyfile(media["face_noaudio_mp4"], video)
    shutil.copyfile(media["tone_wav"], audio)
    out = tmp_path / "out dir" / "result $(x).mp4"
    run = run_edit(str(video), str(audio), str(tiny_weights), str(out), "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert out.is_file() and probe(out).audio is not None
    assert sorted(p.name for p in d.iterdir()) == sorted([video.name, audio.name])
    assert not any(p.name == "PWNED" for p in tmp_path.rglob("*"))


@pytest.mark.slow
def test_missing_weights_is_one_message(tmp_path, media):
    run = run_edit(
        str(media["face_mp4"]),
        str(media["tone_wav"]),
        str(tmp_path / "no_weights"),
        str(tmp_path / "o.mp4"),
        cwd=tmp_path,
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert run.stderr.count("joygen: error:") == 1
    assert "unet/diffusion_pytorch_model.safetensors" in run.stderr and "weights tiny" in run.stderr


@pytest.mark.slow
def test_weights_list_reports_sources(tiny_weights, tmp_path):
    rows = {
        r["name"]: r for r in json.loads(run_cli("weights", "list", "--weights", str(tiny_weights), "--json").stdout)
    }
    assert all(r["found"] and r["tiny"] for r in rows.values())  # the tiny set is complete
    empty = run_cli("weights", "list", "--weights", str(tmp_path))
    assert empty.returncode == 0 and "missing" in empty.stdout and "weights import" in empty.stdout


def test_help_lists_the_commands():
    run = run_cli("--help")
    assert run.returncode == 0
    assert all(cmd in run.stdout for cmd in ("edit", "weights"))
    assert np.all([flag in run_cli("edit", "--help").stdout for flag in ("--report", "--intermediates", "--weights")])


@pytest.mark.slow
def test_a_clip_without_any_face_ends_with_one_message(tmp_path, media, tiny_weights):
    blank = tmp_path / "room.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=beige:s=320x240:r=25", "-t", "0.6", "-pix_fmt", "yuv420p", str(blank))
    run = run_edit(blank, media["tone_wav"], tiny_weights, tmp_path / "o.mp4", "--quiet", cwd=tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("joygen: error:")]
    assert len(errors) == 1 and "no face found" in errors[0] and str(blank) in errors[0]
    assert not (tmp_path / "o.mp4").exists()
