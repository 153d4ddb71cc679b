"""`joygen.metrics.sync_score`: the function the pipeline calls after an edit (golden random SyncNet weights)."""

import subprocess

import pytest
from helpers import ffmpeg

from joygen.metrics import source_sync_score, sync_score, syncnet_hint

KEYS = {"offset", "lse_c", "lse_d", "frames", "status", "reason", "meaning", "tiny_weights", "weights", "protocol"}


@pytest.fixture(scope="module")
def sync_weights(golden):
    path = golden / "syncnet" / "syncnet_v2_random.model"
    if not path.is_file():
        pytest.skip(f"random SyncNet fixture not found at {path}")
    return path


def test_without_weights_it_returns_none_and_says_how_to_add_them(tmp_path, media):
    assert sync_score(media["face_mp4"], tmp_path / "no-weights") is None
    hint = syncnet_hint(tmp_path / "no-weights")
    assert "syncnet/syncnet_v2.model" in hint and "ByteDance/LatentSync-1.6" in hint and str(tmp_path) in hint


def test_a_face_track_clip(golden, sync_weights):
    row = sync_score(golden / "syncnet" / "inputs" / "clip_1s.avi", sync_weights, cropped=True)
    assert set(row) >= KEYS
    assert row["status"] == "ok" and row["reason"] is None
    assert row["offset"] == -15  # the golden clip1s offset (exact; robust to the ffmpeg version, README section 7)
    assert row["frames"] == 25 and row["windows"] == 20 and row["frames_without_face"] == 0
    assert row["weights"]["official"] is False and "not comparable" in row["meaning"]
    assert f"{row['lse_c']:.2f}" in row["meaning"] and f"{row['lse_d']:.2f}" in row["meaning"]
    assert "15 frame(s) (600 ms) behind" in row["meaning"]


@pytest.mark.slow
def test_a_whole_video_goes_through_face_tracks(media, sync_weights):
    row = sync_score(media["face_mp4"], sync_weights, min_track=10)  # 1 s clip: below the official 100 frames
    assert row["status"] == "ok", row["reason"]
    assert len(row["tracks"]) == 1 and row["tracks"][0]["start"] == 0
    assert row["frames_without_face"] == 0 and row["frames_scored"] == row["frames"] >= 25
    assert "MTCNN" in row["protocol"]
    jitter = row["jitter"]  # how steady the track is, split by the voice (a tone: no speech)
    assert "Silero VAD" in jitter["voice"] and jitter["box_px"]["silence"]["steps"] == row["frames"] - 1
    assert jitter["mouth_corners_px"]["all"]["motion"] is not None and row["tracks"][0]["jitter"]["box_px"]


def test_the_official_minimum_track_explains_itself(media, sync_weights):
    row = sync_score(media["face_mp4"], sync_weights)
    assert row["status"] == "failed" and row["lse_c"] is None
    assert "100-frame minimum track" in row["reason"] and "--min-track" in row["reason"]


def test_bad_inputs_give_a_reason_naming_the_file(tmp_path, media, sync_weights):
    row = sync_score(media["face_noaudio_mp4"], sync_weights, cropped=True)
    assert row["status"] == "failed" and "no sound" in row["reason"] and "face_noaudio.mp4" in row["reason"]
    short = tmp_path / "three frames.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=224x224:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=16000",
        "-frames:v",
        "3",
        "-t",
        "0.12",
        "-pix_fmt",
        "yuv420p",
        str(short),
    )
    row = sync_score(short, sync_weights, cropped=True)
    assert row["status"] == "failed" and "too short" in row["reason"] and "three frames.mp4" in row["reason"]
    row = sync_score(tmp_path / "missing.mp4", sync_weights, cropped=True)
    assert row["status"] == "failed" and "missing.mp4" in row["reason"] and "does not exist" in row["reason"]


def test_the_source_row_is_worded_as_the_reference(golden, sync_weights):
    row = source_sync_score(golden / "syncnet" / "inputs" / "clip_1s.avi", sync_weights, cropped=True)
    assert row["meaning"].startswith("The source clip with its own voice")


def test_names_with_colons_reach_ffmpeg_as_files(tmp_path, golden, sync_weights):
    odd = tmp_path / "take:1 (final).avi"
    subprocess.run(["cp", str(golden / "syncnet" / "inputs" / "clip_1s.avi"), str(odd)], check=True)
    row = sync_score(odd, sync_weights, cropped=True)
    assert row["status"] == "ok" and row["offset"] == -15


def test_an_edits_weight_set_leads_to_its_folder(golden, tiny_weights):
    """The pipeline holds a WeightSet without SyncNet: the folder it was loaded from is searched (tiny here)."""
    from joygen.weights import WeightsLocator

    weight_set = WeightsLocator(tiny_weights, use_public=False).resolve(["mtcnn", "vae"])
    row = sync_score(golden / "syncnet" / "inputs" / "clip_1s.avi", weight_set, cropped=True)
    assert row["status"] == "ok" and row["tiny_weights"] is True
    assert row["weights"]["path"] == str(tiny_weights / "syncnet" / "syncnet_v2.model")
    assert "meaningless" in row["meaning"] or "mean nothing" in row["meaning"]


@pytest.mark.slow
def test_an_edit_reports_its_lip_sync_beside_the_sources(tiny_pipeline, tmp_path, media):
    # the tiny set carries a tiny SyncNet: the report gets the sync block (numbers meaningless, and said so)
    cfg = tiny_pipeline.config.with_options(cache_dir=str(tmp_path / "cache"))
    steps = []
    out = tiny_pipeline(
        media["face_mp4"], media["tone_wav"], tmp_path / "o.mp4", config=cfg, progress=lambda *a: steps.append(a)
    )
    assert [s for s in steps if s[0] == "lip_sync"] == [
        ("lip_sync", 0, 1),
        ("lip_sync", 0, 2),
        ("lip_sync", 1, 2),
        ("lip_sync", 2, 2),
    ]
    sync = out.report["sync"]
    assert sync is out.sync and sync["available"] is True
    assert sync["edited"]["status"] == "ok" and sync["source"]["status"] == "ok", sync
    assert sync["min_track"] == out.num_frames - 1  # a 1 s clip: shorter than the official 100 frames
    assert f"LSE-C {sync['edited']['lse_c']:.2f}" in sync["summary"] and "source with its own voice" in sync["summary"]
    assert "mean nothing" in sync["summary"] and "lip_sync" in out.timings
    assert list((tmp_path / "cache" / "sync").glob("*.json"))  # the source's row is kept for the next voice


@pytest.mark.slow
def test_an_edit_without_syncnet_says_how_to_add_it(tiny_weights, tmp_path, media):
    import shutil

    from joygen.pipeline import JoyGenPipeline

    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    shutil.rmtree(weights / "syncnet")
    pipe = JoyGenPipeline.from_pretrained(weights)
    out = pipe(media["face_noaudio_mp4"], media["tone_wav"], tmp_path / "o.mp4")
    assert out.sync["available"] is False and "syncnet/syncnet_v2.model" in out.sync["how"]
    off = pipe(
        media["face_noaudio_mp4"],
        media["tone_wav"],
        tmp_path / "p.mp4",
        config=pipe.config.with_options(sync_score=False),
    )
    assert off.sync is None and off.report["sync"] is None and "lip_sync" not in off.timings


def test_scoring_problems_become_a_failed_row_never_an_exception(monkeypatch):
    from joygen.metrics import api

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    row = api._never_raises(broken, "x.mp4")
    assert row["status"] == "failed" and "RuntimeError: boom" in row["reason"] and row["lse_c"] is None
