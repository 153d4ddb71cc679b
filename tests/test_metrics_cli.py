"""``python -m joygen eval``: inputs, bad-input rows, resuming, the unpaired protocol, the table and the JSON.

Scores come from the golden random SyncNet (shared/golden/syncnet/syncnet_v2_random.model): they test the plumbing,
not lip sync.
"""

import csv
import json
import shutil

import numpy as np
import pytest
from helpers import ffmpeg, run_cli

from joygen.metrics.api import load_syncnet_weights
from joygen.metrics.runner import (
    EvalItem,
    EvalSettings,
    Models,
    ResultsFile,
    check_protocol,
    collect_items,
    make_unpaired_pairs,
    markdown,
    run_eval,
)


@pytest.fixture(scope="module")
def sync_file(golden):
    path = golden / "syncnet" / "syncnet_v2_random.model"
    if not path.is_file():
        pytest.skip(f"random SyncNet fixture not found at {path}")
    return path


@pytest.fixture(scope="module")
def clip_1s(golden):
    return golden / "syncnet" / "inputs" / "clip_1s.avi"


def _three_frames(path):
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=224x224:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=16000",
        "-frames:v", "3", "-t", "0.12", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


@pytest.mark.slow
def test_bad_rows_get_reasons_the_rest_are_scored_and_a_rerun_resumes(tmp_path, media, sync_file, clip_1s):
    shutil.copyfile(clip_1s, tmp_path / "edit.avi")
    shutil.copyfile(clip_1s, tmp_path / "source.avi")
    shutil.copyfile(media["face_noaudio_mp4"], tmp_path / "silent.mp4")
    _three_frames(tmp_path / "short.mp4")
    (tmp_path / "list.csv").write_text(
        "edited,source,audio\n"
        "edit.avi,source.avi,\n"
        "gone.mp4,source.avi,\n"
        "silent.mp4,,\n"
        "short.mp4,,\n"
        "edit.avi,,no-such-voice.wav\n"
    )
    models = Models(load_syncnet_weights(sync_file))
    results = ResultsFile(tmp_path / "rows.jsonl")
    items = collect_items([tmp_path / "list.csv"])
    report = run_eval(items, models, EvalSettings(cropped=True), results, show_progress=False, log=lambda _m: None)
    rows = {(r["path"].rsplit("/", 1)[-1], r["role"], r["audio"] is not None): r for r in report["videos"]}
    assert rows[("edit.avi", "edited", False)]["status"] == "ok"
    assert rows[("edit.avi", "edited", False)]["offset"] == -15  # the golden clip1s offset
    assert rows[("source.avi", "source", False)]["status"] == "ok"  # the GT row: the source with its own voice
    assert (
        "gone.mp4" in rows[("gone.mp4", "edited", False)]["reason"]
        and "row 2" in rows[("gone.mp4", "edited", False)]["reason"]
    )
    assert "no sound" in rows[("silent.mp4", "edited", False)]["reason"]
    assert "too short" in rows[("short.mp4", "edited", False)]["reason"]
    assert "no-such-voice.wav" in rows[("edit.avi", "edited", True)]["reason"]
    agg = report["aggregate"]
    assert agg["edited"]["videos"] == 5 and agg["edited"]["scored"] == 1 and agg["edited"]["failed"] == 4
    assert agg["edited"]["lse_c"] == rows[("edit.avi", "edited", False)]["lse_c"]  # the mean over scored videos
    assert agg["source"]["scored"] == 1
    table = markdown(report)
    assert "| edit.avi | edited | -15 |" in table and "GT (source, own voice)" in table and "too short" in table
    # a rerun with the same settings reuses every row and appends nothing
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 6
    again = run_eval(items, models, EvalSettings(cropped=True), results, show_progress=False, log=lambda _m: None)
    assert again["reused_rows"] == 6 and (tmp_path / "rows.jsonl").read_text().splitlines() == lines
    assert [r["lse_c"] for r in again["videos"]] == [r["lse_c"] for r in report["videos"]]
    # other settings are other rows: nothing is reused
    third = run_eval(
        items, models, EvalSettings(cropped=True, vshift=14), results, show_progress=False, log=lambda _m: None
    )
    assert third["reused_rows"] == 0 and len((tmp_path / "rows.jsonl").read_text().splitlines()) == 12


def test_a_batch_output_folder_gives_sources_and_voices(tmp_path, clip_1s):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(clip_1s, out / "00000_a__b.mp4")
    report = {"inputs": {"video": {"path": str(clip_1s)}, "audio": {"path": str(tmp_path / "voice.wav")}}}
    (out / "00000_a__b.json").write_text(json.dumps(report))
    (out / "00001_c__d.error.txt").write_text("video file 'c.mp4' has no video stream\n")
    items = collect_items([out])
    assert items[0] == EvalItem((out / "00000_a__b.mp4"), clip_1s.resolve(), (tmp_path / "voice.wav").resolve())
    assert items[1].problem == "the edit failed: video file 'c.mp4' has no video stream"


def test_folders_and_missing_paths(tmp_path, clip_1s):
    (tmp_path / "v").mkdir()
    shutil.copyfile(clip_1s, tmp_path / "v" / "b.avi")
    shutil.copyfile(clip_1s, tmp_path / "v" / "a.mp4")
    (tmp_path / "v" / "notes.txt").write_text("x")
    items = collect_items([tmp_path / "v", tmp_path / "nope.mp4"])
    assert [i.path.name for i in items] == ["a.mp4", "b.avi", "nope.mp4"]
    assert items[2].problem == f"'{tmp_path / 'nope.mp4'}' does not exist"


def test_unpaired_protocol_pairs_each_clip_with_the_next_ones_voice(tmp_path, media, clip_1s):
    a, b = tmp_path / "a.avi", tmp_path / "b.mp4"
    shutil.copyfile(clip_1s, a)
    shutil.copyfile(media["face_mp4"], b)
    pairs = make_unpaired_pairs([b, a], tmp_path / "pairs.csv")
    assert [(v.name, w.name) for v, w in pairs] == [("a.avi", "00000_b.wav"), ("b.mp4", "00001_a.wav")]
    with open(tmp_path / "pairs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["video"] for r in rows] == [str(a), str(b)] and all(r["output"].endswith(".mp4") for r in rows)
    from joygen.metrics.protocol import extract_audio

    voice = extract_audio(pairs[0][1], tmp_path / "check.wav")
    assert abs(voice.size / 16000 - 1.0) < 0.05  # cut to a.avi's 1 s
    items = check_protocol([EvalItem(tmp_path / "e.mp4"), EvalItem(tmp_path / "f.mp4", a, a)], "hdtf-unpaired")
    assert "needs the source clip" in items[0].problem and "same clip" in items[1].problem


# -- end to end, through the command line --------------------------------------------------------------------------


@pytest.fixture
def eval_weights(tmp_path, tiny_weights, sync_file):
    """The tiny set with the golden random SyncNet in place of the tiny one."""
    w = tmp_path / "W"
    shutil.copytree(tiny_weights, w)
    shutil.copyfile(sync_file, w / "syncnet" / "syncnet_v2.model")
    return w


@pytest.mark.slow
def test_eval_cli_on_two_tiny_edits_unpaired(tmp_path, media, tiny_weights, eval_weights):
    """hdtf-unpaired end to end: pairs -> joygen batch (tiny weights) -> eval of the batch folder, twice."""
    sources = tmp_path / "sources"
    sources.mkdir()
    # the astronaut's face is about 95 px wide at 512x512; the official size rule wants a mean over 100 px
    for name, voice, flip in (("s1", "tone_wav", "scale=640:640"), ("s2", "tone_stereo_44k", "hflip,scale=640:640")):
        if name == "s2":
            made = run_cli("eval", str(sources), "--protocol", "hdtf-unpaired", "--make-pairs", str(tmp_path / "p.csv"))
            assert made.returncode == 1 and "at least two" in made.stderr  # one clip cannot be unpaired
        ffmpeg(
            "-i", str(media["face_noaudio_mp4"]), "-i", str(media[voice]), "-vf", flip, "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(sources / f"{name}.mp4"),
        )  # fmt: skip
    made = run_cli("eval", str(sources), "--protocol", "hdtf-unpaired", "--make-pairs", str(tmp_path / "pairs.csv"))
    assert made.returncode == 0, made.stderr
    batch = run_cli("batch", str(tmp_path / "pairs.csv"), "--output-dir", str(tmp_path / "edits"), "--weights",
                    str(tiny_weights), "--no-depth", "--device", "cpu")  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    args = ["eval", str(tmp_path / "edits"), "--protocol", "hdtf-unpaired", "--weights", str(eval_weights)]
    args += ["--min-track", "10", "--fid", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    run = run_cli(*args)
    assert run.returncode == 0, run.stderr
    assert "| video | role | offset |" in run.stdout and "GT (source, own voice)" in run.stdout
    assert "scoring lip sync" in run.stderr  # the progress bar
    report = json.loads((tmp_path / "r.json").read_text())
    edited = [r for r in report["videos"] if r["role"] == "edited"]
    assert len(edited) == 2 and {r["role"] for r in report["videos"]} == {"edited", "source"}
    for row in report["videos"]:
        assert row["status"] == "ok", row["reason"]
        assert {"path", "offset", "lse_c", "lse_d", "frames", "frames_without_face"} <= set(row)
    assert report["aggregate"]["edited"]["scored"] == 2
    assert report["aggregate"]["edited"]["lse_c"] == pytest.approx(np.mean([r["lse_c"] for r in edited]), abs=1e-6)
    assert np.isfinite(report["aggregate"]["fid"]["value"])
    assert report["protocol"]["name"] == "hdtf-unpaired" and report["protocol"]["syncnet"]["official"] is False
    assert (tmp_path / "r.md").read_text().strip() == run.stdout.strip()
    again = run_cli(*args)
    assert again.returncode == 0 and json.loads((tmp_path / "r.json").read_text())["reused_rows"] == 4


@pytest.mark.slow
def test_a_voice_shifted_by_four_frames_reports_the_fixture_offset(tmp_path, golden, eval_weights):
    from scipy.io import wavfile

    from joygen.metrics.protocol import extract_audio

    facts = json.loads((golden / "syncnet" / "golden_syncnet.json").read_text())
    sync = golden / "syncnet" / "inputs" / "clip_sync.avi"
    samples = extract_audio(sync, tmp_path / "a.wav")
    delayed = np.concatenate([np.zeros(2560, np.int16), samples[:-2560]])  # 160 ms = 4 frames later
    wavfile.write(tmp_path / "delayed.wav", 16000, delayed)
    shifted = tmp_path / "shifted.avi"
    ffmpeg(
        "-i", str(sync), "-i", str(tmp_path / "delayed.wav"), "-map", "0:v", "-map", "1:a", "-c", "copy", str(shifted)
    )
    run = run_cli("eval", str(shifted), "--cropped", "--weights", str(eval_weights), "--json", str(tmp_path / "r.json"))
    assert run.returncode == 0, run.stderr
    row = json.loads((tmp_path / "r.json").read_text())["videos"][0]
    assert row["offset"] == facts["cases"]["delay4"]["av_offset"]  # exact
    assert row["windows"] == facts["cases"]["delay4"]["n_windows"]
