"""Issue 16: voice activity, a still closed mouth in silences, smoothing without lag, and the jitter measures.

Unit tests of `joygen.voice_activity` and `joygen.stability` on made-up data and on the real Silero VAD (its
weights ship in the silero-vad wheel, and the tiny weight set copies them); pipeline tests with the tiny weights
(their pictures are meaningless, the code paths and the numbers that come out of stage 1 and the BFM are real).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading

import cv2
import numpy as np
import pytest
from helpers import ROOT, decode_all, ffmpeg

from joygen.config import PipelineConfig, StabilityConfig
from joygen.errors import Cancelled, ConfigError
from joygen.face3d.detection import Face
from joygen.stability import (
    BOX_MAX_SHIFT,
    BoxSmoother,
    closed_expression,
    ease_weights,
    keep_mask,
    motion_stats,
    plan_silence,
    smooth_expressions,
)
from joygen.timeline import FPS
from joygen.trajectory import lip_trajectory
from joygen.voice_activity import HANGOVER_S, VoiceActivity

SILENCE_START, SILENCE_S = 2.0, 1.5  # the made voice: 2 s of the demo speech, 1.5 s of digital silence, the rest
ONSET_FRAME = int((SILENCE_START + SILENCE_S) * FPS)  # 87: the frame holding t = 3.5 s, where speech comes back
# Measured: inside the closed span the opening is one float32 expression on 4 BFM vertices, 7.6e-6 mm from the
# neutral face's (float32 noise; the trajectory is rounded to 4 decimals) and it does not change from frame to frame
# (0.0); under `off` the tiny stage 1 keeps the same frames 1.04 mm from it and moves them by up to 0.12 mm a frame.
BAND_MM = 1e-3  # |opening - closed value| inside a closed span
STEP_MM = 1e-3  # |frame-to-frame change| inside a closed span


def _sox(*args: str) -> None:
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed (scripts/system-packages.sh installs it)")
    subprocess.run(["sox", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def gap_voice(tmp_path_factory, demo_wav):
    """The demo speech with 1.5 s of silence put in at 2.0 s (made with sox), 6.5 s, 16 kHz stereo."""
    d = tmp_path_factory.mktemp("gap")
    _sox(str(demo_wav), str(d / "a.wav"), "trim", "0", str(SILENCE_START))
    _sox(str(demo_wav), str(d / "b.wav"), "trim", str(SILENCE_START))
    _sox("-n", "-r", "16000", "-c", "2", "-b", "16", str(d / "s.wav"), "trim", "0", str(SILENCE_S))
    _sox(str(d / "a.wav"), str(d / "s.wav"), str(d / "b.wav"), str(d / "gap.wav"))
    return d / "gap.wav"


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory, astronaut_png):
    """1 s of the astronaut, encoded losslessly: every frame decodes to the same pixels."""
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    ffmpeg("-loop", "1", "-i", str(astronaut_png), "-t", "1", "-r", "25", "-c:v", "libx264rgb", "-qp", "0", str(path))
    return path


@pytest.fixture(scope="module")
def silent_voice(tmp_path_factory):
    """One second of digital silence (sox)."""
    path = tmp_path_factory.mktemp("silent") / "silent.wav"
    _sox("-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "trim", "0", "1.0")
    return path


# -- voice activity ---------------------------------------------------------------------------------------------------


def test_the_vad_finds_the_silence_and_bridges_pauses_between_words(tiny_pipeline, gap_voice, demo_wav):
    from joygen.media import load_audio

    wav = load_audio(gap_voice)
    n = len(wav) // 640
    voice = tiny_pipeline.vad(wav, n)
    assert voice.active.shape == voice.probability.shape == (n,)
    spans = voice.silent_spans(round(0.3 * FPS))
    middle = [s for s in spans if s[0] > 10 and s[1] < n - 10]
    assert len(middle) == 1, spans
    first, last = middle[0]
    # speech ends at 2.0 s (frame 50) and the hangover keeps the voice on for 0.2 s
    assert 50 <= first <= 50 + round(HANGOVER_S * FPS) + 1
    # the onset after the silence is found no later than one frame after the frame that holds it
    assert ONSET_FRAME - 1 <= last + 1 <= ONSET_FRAME + 1
    # the demo's own speech has short pauses between words; none of them makes a silent span
    plain = tiny_pipeline.vad(load_audio(demo_wav), len(load_audio(demo_wav)) // 640)
    assert [s for s in plain.silent_spans(round(0.3 * FPS)) if s[0] > 10] == []
    assert "Silero VAD" in voice.detector


def test_a_silent_voice_is_one_span_and_a_tone_is_not_speech(tiny_pipeline):
    n = 30
    silent = tiny_pipeline.vad(np.zeros(n * 640, np.float32), n)
    assert not silent.active.any() and silent.silent_spans(1000) == [(0, n - 1)]  # whatever the threshold
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n * 640) / 16000)).astype(np.float32)
    assert not tiny_pipeline.vad(tone, n).active.any()
    empty = VoiceActivity(np.zeros(0, bool), np.zeros(0, np.float32), "x")
    assert empty.silent_spans(1) == []


# -- the silence plan and the closed mouth ------------------------------------------------------------------------------


def test_ease_weights_rest_inside_the_span_and_stop_at_its_edges():
    w = ease_weights(40, [(10, 29)], 4)
    assert (w[:10] == 0).all() and (w[30:] == 0).all()
    assert (w[14:26] == 1).all()  # from ease + 1 frames in
    assert 0 < w[10] < w[11] < w[12] < w[13] < 1 and np.allclose(w[10:14], w[29:25:-1])
    edge = ease_weights(20, [(0, 9)], 4)  # a span at the start of the clip needs no ease there
    assert (edge[:6] == 1).all() and edge[9] < edge[8] < 1
    assert (ease_weights(20, [(5, 9)], 0)[5:10] == 1).all()  # no ease: a step
    keep = keep_mask(40, [(10, 29)], 3)
    assert keep[13:27].all() and not keep[:13].any() and not keep[27:].any()


def test_the_plan_follows_the_mode_and_close_needs_depth():
    active = np.ones(50, bool)
    active[10:40] = False
    voice = VoiceActivity(active, active.astype(np.float32), "test")
    cfg = StabilityConfig()
    close = plan_silence(voice, cfg, True, 3)
    assert close.mode == "close" and close.spans == [(10, 39)] and close.weights.max() == 1 and not close.keep.any()
    no_depth = plan_silence(voice, cfg, False, 3)
    assert no_depth.mode == "keep-source" and "no-depth" in no_depth.note and no_depth.keep.sum() == 24
    off = plan_silence(voice, StabilityConfig(silence_mode="off"), True, 3)
    assert off.spans == [(10, 39)] and not off.weights.any() and not off.keep.any()  # found, left alone
    short = plan_silence(voice, StabilityConfig(silence_seconds=1.3), True, 3)
    assert short.spans == []  # 30 frames = 1.2 s < 1.3 s


def test_the_closed_expression_puts_the_lips_where_the_neutral_face_has_them(tiny_pipeline):
    fm = tiny_pipeline.depth.face_model
    basis = fm.lip_gap_basis().numpy()
    assert basis.shape == (27, 64)
    rng = np.random.default_rng(0)
    exp = rng.normal(0, 1.0, (12, 64)) + rng.normal(0, 1.0, 64)
    closed = closed_expression(exp, basis)
    assert np.abs(basis @ closed).max() < 1e-9 * np.abs(basis).max()  # float64: no lip gap left
    # the smallest such change: what was removed lies in the basis' row space, the rest of the mean is untouched
    removed = exp.mean(0) - closed
    assert np.allclose(np.linalg.pinv(basis) @ (basis @ removed), removed, atol=1e-9)
    neutral = lip_trajectory(fm, np.zeros((1, 64)))["mouth_open_mm"][0]
    opened = lip_trajectory(fm, exp)["mouth_open_mm"]
    assert np.abs(opened - neutral).max() > 0.5  # these expressions do open and close the mouth
    assert abs(lip_trajectory(fm, closed[None])["mouth_open_mm"][0] - neutral) < 1e-4  # float32 of the 4 vertices


def test_the_lip_pairs_face_each_other_on_the_outer_contour():
    from joygen.face3d.bfm import LIP_PAIRS_468, OUTER_LIP_468

    upper, lower = OUTER_LIP_468[1:10], OUTER_LIP_468[11:][::-1]
    assert tuple(zip(upper, lower)) == LIP_PAIRS_468


def test_savitzky_golay_does_not_delay_an_onset_and_keeps_the_peak():
    t = np.arange(60)
    ramp = np.clip((t - 20) / 4, 0, 1)  # a mouth opening over 4 frames from frame 20
    x = np.stack([ramp, np.exp(-((t - 40) ** 2) / 8.0)], 1)
    noisy = x + 0.02 * np.random.default_rng(1).standard_normal(x.shape)
    y = smooth_expressions(noisy, 5)
    half = lambda s: int(np.argmax(s > 0.5))  # noqa: E731
    assert half(y[:, 0]) == half(x[:, 0])  # no lag: the half-way frame is the same
    assert int(np.argmax(y[:, 1])) == 40 and y[40, 1] > 0.9  # the peak stays where it is, nearly as high
    jitter = lambda s: np.abs(np.diff(s - x, 2, axis=0)).mean()  # noqa: E731
    assert jitter(y) < 0.5 * jitter(noisy)
    assert np.array_equal(smooth_expressions(np.ones((2, 3)), 5), np.ones((2, 3)))  # too short: unchanged
    assert np.allclose(smooth_expressions(np.ones((10, 3)), 5), 1.0, atol=1e-12)


def test_expression_window_must_be_odd():
    assert PipelineConfig().with_options(expression_window=7).stability.expression_window == 7
    assert PipelineConfig().with_options(expression_window=1).stability.expression_window == 1
    for bad in (4, 3, 27):
        with pytest.raises(ConfigError, match="expression_window"):
            PipelineConfig().with_options(expression_window=bad)
    with pytest.raises(ConfigError, match="silence_mode"):
        PipelineConfig().with_options(silence_mode="mute")


def test_cli_flags_reach_the_config():
    from joygen.cli import build_parser
    from joygen.config import option_names

    args = build_parser().parse_args(
        ["edit", "--video", "v", "--audio", "a", "-o", "o.mp4", "--silence-mode", "off", "--no-smoothing"]
        + ["--silence-seconds", "0.5", "--box-beta", "4"]
    )
    cfg = PipelineConfig().with_options(**{k: v for k, v in vars(args).items() if k in option_names()})
    st = cfg.stability
    assert (st.silence_mode, st.smoothing, st.silence_seconds, st.box_beta) == ("off", False, 0.5, 4.0)
    default = build_parser().parse_args(["edit", "--video", "v", "--audio", "a", "-o", "o.mp4"])
    cfg = PipelineConfig().with_options(**{k: v for k, v in vars(default).items() if k in option_names()})
    assert cfg.stability == StabilityConfig()


# -- boxes ------------------------------------------------------------------------------------------------------------


def _face(box) -> Face:
    return Face(tuple(float(v) for v in box), np.zeros((5, 2)), 0.99, tuple(float(v) for v in box))


def _jittery_boxes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array([100.0, 80.0, 300.0, 340.0])
    return base + rng.normal(0, 4.0, (n, 4))


def test_box_smoothing_follows_source_order_through_ping_pong():
    from joygen.timeline import source_frame_index

    boxes = _jittery_boxes(10)
    smoother = BoxSmoother(1.0, 2.0)
    got = {}
    for i in range(25):  # 10 source frames played 0..9, 9..0, 0..4
        src = source_frame_index(i, 10)
        face = smoother(src, _face(boxes[src]))
        got.setdefault(src, []).append(face.box)
        assert face.detected_box == tuple(boxes[src])
    assert all(len(set(b)) == 1 for b in got.values())  # a source frame gets one box, however often it is shown
    fresh = BoxSmoother(1.0, 2.0)
    once = [fresh(k, _face(boxes[k])).box for k in range(10)]
    assert [got[k][0] for k in range(10)] == once  # and the same as playing the source once


def test_box_smoothing_lowers_motion_stays_near_the_box_and_restarts_after_a_gap():
    boxes = _jittery_boxes(60)
    smoother = BoxSmoother(1.0, 2.0)
    out = np.array([smoother(k, _face(b)).box for k, b in enumerate(boxes)])
    from joygen.stability import box_points

    before, after = motion_stats(box_points(boxes))["all"], motion_stats(box_points(out))["all"]
    assert after["motion"] < 0.5 * before["motion"] and after["jitter"] < 0.5 * before["jitter"]
    size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    assert (np.abs(out - boxes) <= BOX_MAX_SHIFT * size + 1e-9).all()
    # a frame without a face restarts the filter: the next face gets its own box
    assert smoother(60, None) is None
    moved = boxes[0] + 30.0
    assert smoother(61, _face(moved)).box == tuple(moved)
    # so does a jump to somewhere else (a cut)
    far = moved + 400.0
    assert smoother(62, _face(far)).box == tuple(far)


def test_box_smoothing_goes_on_from_cached_boxes_exactly():
    boxes = _jittery_boxes(20, seed=3)
    first = BoxSmoother(1.0, 2.0)
    faces = [first(k, _face(b)) for k, b in enumerate(boxes)]
    again = BoxSmoother(1.0, 2.0)  # a second run: frames 0-11 come from the cache, the rest are new
    out = [again(k, faces[k], cached=True) if k < 12 else again(k, _face(boxes[k])) for k in range(20)]
    assert [f.box for f in out] == [f.box for f in faces]


# -- jitter -----------------------------------------------------------------------------------------------------------


def test_motion_stats_split_by_voice_and_skip_missing_frames():
    x = np.array([0.0, 1.0, 3.0, 3.0, 3.0, np.nan, 4.0, 4.0])
    voice = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    s = motion_stats(x, voice)
    assert s["all"] == {"steps": 5, "motion": pytest.approx(3 / 5), "jitter": pytest.approx((1 + 2 + 0) / 3)}
    assert s["speech"] == {"steps": 2, "motion": 1.5, "jitter": 1.0}
    assert s["silence"] == {"steps": 2, "motion": 0.0, "jitter": None}  # no three silent frames in a row have values
    pts = np.zeros((4, 2, 2))
    pts[:, 0, 0] = [0, 3, 3, 3]  # one of two points moves 3 px once: the mean over points is 1.5
    assert motion_stats(pts)["all"]["motion"] == 0.5 and motion_stats(pts[:1])["all"]["motion"] is None


# -- through the pipeline -----------------------------------------------------------------------------------------------


def _trajectory(pipe, video, voice, tmp_path, **options) -> dict:
    """The lip trajectory the 3D stage will draw, taken from the preview; the run stops before its first batch."""
    stop, seen = threading.Event(), {}

    def preview(kind, data):
        if kind == "trajectory":
            seen.update(data)
            stop.set()

    cfg = pipe.config.with_options(cache=False, sync_score=False, **options)
    with pytest.raises(Cancelled):
        pipe(video, voice, tmp_path / "o.mp4", config=cfg, preview=preview, cancel=stop)
    return {k: np.asarray(v) for k, v in seen.items()}


def test_a_silence_closes_the_mouth_and_the_official_setting_does_not(tiny_pipeline, media, gap_voice, tmp_path):
    video = media["face_noaudio_mp4"]
    close = _trajectory(tiny_pipeline, video, gap_voice, tmp_path)
    off = _trajectory(tiny_pipeline, video, gap_voice, tmp_path, silence_mode="off")
    hard = _trajectory(tiny_pipeline, video, gap_voice, tmp_path, silence_ease_frames=0)
    active = close["voice_active"]
    assert len(active) == len(close["mouth_open_mm"]) == len(off["mouth_open_mm"])
    (first, last), *_ = [s for s in VoiceActivity(active, active, "").silent_spans(8) if s[0] > 10]
    ease = StabilityConfig().silence_ease_frames
    rest = slice(first + ease, last - ease + 1)  # the frames at rest: weight 1 (ease_weights)
    closed_mm = lip_trajectory(tiny_pipeline.depth.face_model, np.zeros((1, 64)))["mouth_open_mm"][0]

    def still_and_closed(t) -> tuple[float, float]:
        opening = t["mouth_open_mm"][rest]
        return float(np.abs(opening - closed_mm).max()), float(np.abs(np.diff(opening)).max())

    band, step = still_and_closed(close)
    assert band <= BAND_MM and step <= STEP_MM
    off_band, off_step = still_and_closed(off)
    assert off_band > 10 * BAND_MM and off_step > 10 * STEP_MM  # stage 1's own mouth keeps moving
    # nothing changes where the voice speaks: the first voiced frames after the silence move as with `off`
    voiced = np.flatnonzero(active)
    assert np.array_equal(close["mouth_open_mm"][voiced], off["mouth_open_mm"][voiced])
    assert last + 1 <= ONSET_FRAME + 1  # the onset is not delayed by more than one frame
    # the ease: no pop at either end of the span (measured: 0.32 mm at most a frame, 1.04 mm without the ease)
    for edges in (slice(first - 1, rest.start + 1), slice(rest.stop - 1, last + 2)):
        eased, popped = (np.abs(np.diff(t["mouth_open_mm"][edges])).max() for t in (close, hard))
        assert eased < 0.5 * popped


@pytest.mark.slow
def test_a_silent_voice_gives_a_still_closed_mouth(tiny_pipeline, still_clip, silent_voice, tmp_path):
    cfg = tiny_pipeline.config.with_options(cache=False, sync_score=False, preset="ultrafast")
    inter = tmp_path / "inter"
    out = tiny_pipeline(still_clip, silent_voice, tmp_path / "o.mp4", config=cfg, intermediates=inter)
    n = out.num_frames
    voice, silence = out.report["voice"], out.report["stability"]["silence"]
    assert voice["frames_active"] == 0 and voice["silent_spans"] == [[0, n - 1]] == silence["spans"]
    assert silence["frames_closed"] == n and silence["mode"] == "close"
    closed_mm = lip_trajectory(tiny_pipeline.depth.face_model, np.zeros((1, 64)))["mouth_open_mm"][0]
    assert np.abs(np.asarray(out.trajectory["mouth_open_mm"]) - closed_mm).max() <= BAND_MM
    # a still picture and one expression: the edited mesh's lips and the depth map do not move. Not bit-exact:
    # each frame's 3D fit runs in its own batch, and a busy CI machine gave lips 1.5e-5 px apart (float noise).
    lips = np.asarray(out.trajectory["lips"])
    assert np.isfinite(lips).all() and np.abs(lips - lips[0]).max() <= 1e-3  # px
    depths = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(int) for p in sorted((inter / "depth").glob("*.png"))]
    assert len(depths) == n
    for depth in depths:  # a 1e-5 px shift moves a depth level by at most 1, and flips at most an edge pixel or two
        changed = np.abs(depth - depths[0])
        assert (changed > 1).sum() <= 4
    jitter = out.report["stability"]["jitter"]
    assert jitter["mouth_open_mm"]["edited"]["silence"]["motion"] <= 1e-3  # mm
    assert jitter["lip_shape_px"]["silence"]["motion"] <= 1e-3  # px


@pytest.fixture(scope="module")
def speech_then_silence(tmp_path_factory, demo_wav):
    """0.8 s of the demo speech, then 1.2 s of silence (sox)."""
    d = tmp_path_factory.mktemp("tail")
    _sox(str(demo_wav), str(d / "a.wav"), "trim", "0.4", "0.8")
    _sox("-n", "-r", "16000", "-c", "2", "-b", "16", str(d / "s.wav"), "trim", "0", "1.2")
    _sox(str(d / "a.wav"), str(d / "s.wav"), str(d / "voice.wav"))
    return d / "voice.wav"


@pytest.mark.slow
def test_keep_source_passes_the_silent_frames_through(tiny_pipeline, still_clip, speech_then_silence, tmp_path):
    cfg = tiny_pipeline.config.with_options(
        silence_mode="keep-source", use_depth=False, cache=False, sync_score=False, lossless=True, preset="ultrafast"
    )
    out = tiny_pipeline(still_clip, speech_then_silence, tmp_path / "o.mp4", config=cfg)
    silence = out.report["stability"]["silence"]
    (first, last) = silence["spans"][0]
    assert last == out.num_frames - 1 and silence["frames_kept"] == last - first + 1 - 3  # fades: 3 frames
    src, edited = decode_all(still_clip)[0].astype(int), decode_all(out.video).astype(int)
    diff = [np.abs(frame - src).sum() for frame in edited]
    assert all(d == 0 for d in diff[first + 3 :])  # kept: byte-identical to the source (a still picture)
    assert all(d > 0 for d in diff[: first + 3])  # edited, fading out inside the silence
    assert diff[first - 1] > diff[first] > diff[first + 1] > diff[first + 2] > 0


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory, demo_video, demo_wav):
    """1 s of the demo clip at 360x360 (its MTCNN boxes jitter), and 1.6 s of its speech: 40 frames, ping-pong."""
    d = tmp_path_factory.mktemp("moving")
    clip = d / "clip.mp4"
    ffmpeg("-i", str(demo_video), "-t", "1", "-vf", "scale=360:360", "-an", "-c:v", "libx264", "-crf", "12", str(clip))
    voice = d / "voice.wav"
    ffmpeg("-i", str(demo_wav), "-t", "1.6", str(voice))
    return clip, voice


@pytest.mark.slow
def test_box_smoothing_in_the_pipeline_lowers_box_motion_and_repeats_follow_the_source(
    tiny_pipeline, moving_clip, tmp_path
):
    clip, voice = moving_clip
    cfg = tiny_pipeline.config.with_options(
        cache_dir=str(tmp_path / "cache"), sync_score=False, use_depth=False, preset="ultrafast"
    )
    runs = []
    for k in range(2):  # the second run reads every frame from the video cache
        inter = tmp_path / f"inter{k}"
        out = tiny_pipeline(clip, voice, tmp_path / f"o{k}.mp4", config=cfg, intermediates=inter)
        runs.append((out, json.loads((inter / "faces.json").read_text())))
    (out, faces), (_, cached_faces) = runs
    assert out.report["frames"]["ping_pong"] and out.num_frames == 40
    assert [f["face"] for f in faces] == [f["face"] for f in cached_faces]  # the cache holds the smoothed boxes
    by_source = {}
    for row in faces:
        by_source.setdefault(row["source_frame"], set()).add(tuple(row["face"]["box"]))
    assert all(len(b) == 1 for b in by_source.values())  # ping-pong: a source frame has one box
    box = np.array([f["face"]["box"] for f in faces])
    detected = np.array([f["face"]["detected_box"] for f in faces])
    size = np.tile(detected[:, 2:] - detected[:, :2], 2)
    assert (np.abs(box - detected) <= BOX_MAX_SHIFT * size + 1e-3).all()  # faces.json rounds to 3 decimals
    jitter = out.report["stability"]["jitter"]["box_px"]
    assert jitter["crop"]["all"]["motion"] < 0.5 * jitter["detected"]["all"]["motion"]


@pytest.mark.slow
def test_box_smoothing_on_the_demo_clip(tiny_pipeline, demo_video, demo_wav, tmp_path):
    """The demo clip as it is (900x900): the report's box motion with and without smoothing, and how far the crop
    moved from each frame's own box."""
    voice = tmp_path / "voice.wav"
    ffmpeg("-i", str(demo_wav), "-t", "2", str(voice))
    cfg = tiny_pipeline.config.with_options(cache=False, sync_score=False, use_depth=False, preset="ultrafast")
    out = tiny_pipeline(demo_video, voice, tmp_path / "o.mp4", config=cfg, intermediates=tmp_path / "inter")
    faces = [f["face"] for f in json.loads((tmp_path / "inter" / "faces.json").read_text())]
    box, detected = np.array([f["box"] for f in faces]), np.array([f["detected_box"] for f in faces])
    shift = np.abs(box - detected)
    assert (shift <= BOX_MAX_SHIFT * np.tile(detected[:, 2:] - detected[:, :2], 2) + 1e-3).all()
    assert shift.max() <= 30.0  # px: 5 % of the demo's ~400 x 560 px face box
    jitter = out.report["stability"]["jitter"]["box_px"]
    before, after = jitter["detected"]["all"], jitter["crop"]["all"]
    assert after["motion"] < 0.5 * before["motion"] and after["jitter"] < 0.5 * before["jitter"]


# -- the official settings -------------------------------------------------------------------------------------------

BASE_COMMIT = "ecfbc23"  # main before issue 16: the code path the official settings must reproduce exactly
RECORD = """
import sys, numpy as np, torch
import joygen
from joygen.editor.mouth_editor import MouthEditor
from joygen.pipeline import JoyGenPipeline
seen = []
generate = MouthEditor.generate
def record(self, unet_input, tokens):
    seen.append((unet_input.clone(), tokens.clone()))
    return generate(self, unet_input, tokens)
MouthEditor.generate = record
weights, video, voice, out, npz, root = sys.argv[1:]
assert joygen.__file__.startswith(root), joygen.__file__  # the code under test, not another checkout
pipe = JoyGenPipeline.from_pretrained(weights, device="cpu")
cfg = pipe.config.with_options(cache=False, sync_score=False, preset="ultrafast", **OPTIONS)
pipe(video, voice, out, config=cfg)
np.savez(npz, **{f"x{k}": x.numpy() for k, (x, _) in enumerate(seen)}, **{f"t{k}": t.numpy() for k, (_, t) in enumerate(seen)})
"""


def _record(code_root, weights, video, voice, out_dir, options: dict) -> dict:
    import os
    import sys

    npz = out_dir / "inputs.npz"
    env = {**os.environ, "PYTHONPATH": str(code_root), "HF_HUB_OFFLINE": "1", "JOYGEN_CACHE_DIR": str(out_dir)}
    script = RECORD.replace("**OPTIONS", f"**{options!r}")
    args = [str(weights), str(video), str(voice), str(out_dir / "o.mp4"), str(npz), str(code_root)]
    # run in out_dir: `python -c` puts the working directory first on sys.path, and this checkout's is ROOT
    run = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=900, cwd=out_dir
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with np.load(npz) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def base_code(tmp_path_factory):
    """joygen as it was at `BASE_COMMIT`, unpacked from this repository's history."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the base commit cannot be unpacked")
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{BASE_COMMIT}^{{commit}}"], capture_output=True)
    if found.returncode != 0:
        pytest.skip(f"this checkout has no commit {BASE_COMMIT} (a shallow clone?)")
    d = tmp_path_factory.mktemp("base")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BASE_COMMIT, "joygen"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(d)], input=archive.stdout, check=True)
    return d


@pytest.fixture(scope="module")
def pause_voice(tmp_path_factory, demo_wav):
    """0.6 s of the demo speech, 0.7 s of silence, 0.5 s more speech: 44 frames with one closed span."""
    d = tmp_path_factory.mktemp("pause")
    _sox(str(demo_wav), str(d / "a.wav"), "trim", "0", "0.6")
    _sox("-n", "-r", "16000", "-c", "2", "-b", "16", str(d / "s.wav"), "trim", "0", "0.7")
    _sox(str(demo_wav), str(d / "b.wav"), "trim", "1.0", "0.5")
    _sox(str(d / "a.wav"), str(d / "s.wav"), str(d / "b.wav"), str(d / "voice.wav"))
    return d / "voice.wav"


@pytest.mark.slow
def test_the_official_settings_feed_the_unet_exactly_what_the_base_commit_does(
    base_code, tiny_weights, moving_clip, pause_voice, tmp_path
):
    """Every UNet input (12 latent channels and the audio tokens) of a short clip whose boxes jitter and whose voice
    pauses, recorded from the code before issue 16 and from this code with `--silence-mode off --no-smoothing`."""
    clip, _ = moving_clip
    record = {}
    for name, root, options in (
        ("base", base_code, {}),
        ("official", ROOT, {"silence_mode": "off", "smoothing": False}),
        ("default", ROOT, {}),
    ):
        (tmp_path / name).mkdir()
        record[name] = _record(root, tiny_weights, clip, pause_voice, tmp_path / name, options)
    base, official, default = record["base"], record["official"], record["default"]
    assert set(base) == set(official) and len(base) == 2 * 6  # 44 frames in batches of 8
    for key in base:
        assert np.array_equal(base[key], official[key]), key  # exactly: not a bit differs
    # and the test can tell: the default settings (smoothed boxes, a closed mouth in the pause) change the inputs
    changed = [k for k in base if k.startswith("x") and not np.array_equal(base[k], default[k])]
    assert len(changed) >= 5


def test_the_summary_line_says_what_was_done_in_silences():
    from types import SimpleNamespace

    from joygen.views import summary_line

    def result(silence):
        report = {"total_s": 10.0, "stability": {"silence": silence}, "config": {"stability": {"silence_seconds": 0.3}}}
        return SimpleNamespace(report=report, num_frames=100, fps=25, frames_without_face=[], timings={}, sync=None)

    line = summary_line(result({"mode": "close", "spans": [[10, 47], [80, 91]]}))
    assert "Silent voice: 2 spans, 2.0 s, mouth closed." in line  # (38 + 12) frames / 25 fps
    assert "the video's own mouth kept" in summary_line(result({"mode": "keep-source", "spans": [[0, 24]]}))
    assert "Silent voice: no pause of 0.3 s or more." in summary_line(result({"mode": "close", "spans": []}))
