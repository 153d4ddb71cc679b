"""JoyGenPipeline through the Python API (tiny weights, CPU)."""

import json
import threading

import numpy as np
import pytest
from helpers import count_frames, ffmpeg

from joygen.errors import Cancelled, InputError, NoFaceError
from joygen.media import load_audio, probe
from joygen.timeline import Timeline


@pytest.mark.slow
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


@pytest.mark.slow
def test_still_image_is_held_for_the_voice_track(tiny_pipeline, astronaut_png, media, tmp_path):
    out = tiny_pipeline(astronaut_png, media["tone_wav"], tmp_path / "still.mp4")
    info = probe(out.video)
    assert (info.video.width, info.video.height) == (512, 512) and info.audio is not None
    assert out.num_frames == Timeline.from_samples(16000).num_frames


@pytest.mark.slow
def test_only_the_lower_face_changes(tiny_pipeline, media, tmp_path):
    cfg = tiny_pipeline.config.with_options(crf=0, preset="ultrafast")
    out = tiny_pipeline(
        media["face_noaudio_mp4"], media["tone_wav"], tmp_path / "o.mp4", config=cfg, intermediates=tmp_path / "inter"
    )
    from helpers import decode_all

    src, edited = decode_all(media["face_noaudio_mp4"])[0].astype(int), decode_all(out.video)[0].astype(int)
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
    with pytest.raises(NoFaceError, match=f"no face found in any of the {count_frames(blank)} frames"):
        tiny_pipeline(blank, media["tone_wav"], tmp_path / "o.mp4")  # the clip's frames, not the ping-pong's 25
    assert not (tmp_path / "o.mp4").exists()


def test_output_cannot_overwrite_an_input(tiny_pipeline, media, tmp_path):
    import shutil

    v = tmp_path / "v.mp4"
    shutil.copyfile(media["face_mp4"], v)
    with pytest.raises(InputError, match="is the video file itself"):
        tiny_pipeline(v, media["tone_wav"], v)


@pytest.mark.slow
def test_default_output_goes_to_a_fresh_folder(tiny_pipeline, media):
    out = tiny_pipeline(media["face_mp4"], media["face_mp4"])  # a video with sound works as the voice track
    assert out.video.is_file() and out.video.parent.name.startswith("joygen-out-")
    assert out.video.parent != media["face_mp4"].parent


@pytest.fixture(scope="module")
def face_leaves_clip(tmp_path_factory, demo_video, demo_wav):
    """3.2 s of the demo clip in which, from 1.6 s to 2.6 s, the picture pans to the empty room."""
    d = tmp_path_factory.mktemp("leaves")
    clip = d / "leaves.mp4"
    graph = "[0:v]split[a][b];[b]crop=300:300:0:0,scale=900:900[room];[a][room]overlay=enable='between(t,1.6,2.6)'"
    ffmpeg(
        "-i", str(demo_video), "-filter_complex", graph, "-t", "3.2", "-an", "-c:v", "libx264", "-crf", "12", str(clip)
    )
    voice = d / "voice.wav"
    ffmpeg("-i", str(demo_wav), "-t", "3.2", str(voice))
    return clip, voice


@pytest.mark.slow
def test_frames_without_a_face_pass_through_byte_identical(tiny_pipeline, face_leaves_clip, tmp_path):
    from helpers import decode_all

    clip, voice = face_leaves_clip
    cfg = tiny_pipeline.config.with_options(lossless=True, preset="ultrafast")
    out = tiny_pipeline(clip, voice, tmp_path / "o.mp4", config=cfg, report=tmp_path / "r.json")
    missing = out.frames_without_face
    assert missing == list(range(40, 66))  # 1.6 s to 2.6 s inclusive, and only those
    assert json.loads((tmp_path / "r.json").read_text())["frames"]["frames_without_face"] == missing
    src, edited = decode_all(clip), decode_all(out.video)
    assert len(edited) == out.num_frames == 80
    for i in missing:
        np.testing.assert_array_equal(edited[i], src[i])  # exactly the decoded input
    changed = [np.abs(edited[i].astype(int) - src[i]).max() > 20 for i in range(80)]
    assert all(changed[:37]) and all(changed[69:])  # the rest is edited (fades are 3 frames long)
    # a short cross-fade next to the gap: the edit fades in and out instead of jumping
    diff = [np.abs(edited[i].astype(int) - src[i]).sum() for i in (36, 37, 38, 39)]
    assert diff[0] > diff[1] > diff[2] > diff[3] > 0


def test_depth_mode_uses_the_audio_driven_mouth(tiny_pipeline, media, tmp_path):
    previews, calls, steps = [], [], []
    out = tiny_pipeline(
        media["face_noaudio_mp4"],
        media["tone_wav"],
        tmp_path / "o.mp4",
        intermediates=tmp_path / "inter",
        preview=lambda kind, data: calls.append(kind) or previews.append(data),
        progress=lambda stage, done, total: steps.append((stage, done, total)),
    )
    assert out.depth and out.report["mode"]["depth"] and out.report["mode"]["expression_rows"] == 28
    assert calls[0] == "trajectory" and "depth" in calls  # the trajectory comes before the video is done
    frame = previews[calls.index("frame")]  # the latest edited frame, while the video is being made
    assert frame["edited"].shape == frame["source"].shape and frame["frame"] < out.num_frames
    edit_steps = [s for s in steps if s[0] == "edit"]
    assert edit_steps[0] == ("edit", 0, out.num_frames) and edit_steps[-1] == ("edit", out.num_frames, out.num_frames)
    order = [s[0] for s in steps]
    assert order.index("encode") > len(order) - 1 - order[::-1].index("edit")  # encoding is its own step, after
    assert out.depth_previews[0].box is not None  # the face box: the preview's own aspect
    traj = out.trajectory
    assert len(traj["mouth_open_mm"]) == out.num_frames == len(traj["lips"]) == len(traj["loudness_db"])
    assert traj["lips"].shape[1:] == (20, 2) and traj["jaw"].shape[1:] == (17, 2)
    assert np.isfinite(traj["lips"]).all()  # every frame has a face here
    saved = json.loads((tmp_path / "inter" / "lip_trajectory.json").read_text())
    assert len(saved["lips"]) == out.num_frames and len(saved["jaw"][0]) == 17
    assert len(list((tmp_path / "inter" / "depth").glob("*.png"))) == out.num_frames
    assert np.load(tmp_path / "inter" / "expressions.npy").shape == (28, 64)
    depth = out.depth_previews[0].depth
    assert depth.shape == (256, 256, 3) and depth[:128].max() == 0 and depth[128:].max() > 0


@pytest.mark.slow
def test_without_3d_weights_the_run_stops_unless_no_depth_is_asked(tiny_weights, tmp_path, media):
    import shutil

    from joygen.config import PipelineConfig
    from joygen.errors import WeightsError
    from joygen.pipeline import JoyGenPipeline

    partial = tmp_path / "weights"
    shutil.copytree(tiny_weights, partial)
    shutil.rmtree(partial / "bfm")
    shutil.rmtree(partial / "audio2secc")
    with pytest.raises(WeightsError) as err:
        JoyGenPipeline.from_pretrained(partial)
    msg = str(err.value)
    assert "bfm/BFM_model_front.mat" in msg and "audio2secc/config.yaml" in msg and "--no-depth" in msg
    pipe = JoyGenPipeline.from_pretrained(partial, config=PipelineConfig().with_options(use_depth=False))
    out = pipe(media["face_mp4"], media["tone_wav"], tmp_path / "o.mp4")
    assert not out.depth and out.report["mode"]["depth"] is False
    assert "mouth_open_mm" not in out.trajectory and len(out.trajectory["loudness_db"]) == out.num_frames


@pytest.mark.slow
def test_a_tenth_of_a_second_and_three_seconds_of_silence(tiny_pipeline, media, tmp_path):
    short = tmp_path / "short.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=200:sample_rate=16000:duration=0.1", str(short))
    out = tiny_pipeline(media["face_noaudio_mp4"], short, tmp_path / "short.mp4")
    assert out.num_frames == 4 and probe(out.video).audio is not None
    # too short to measure lip sync: the report says so, and the edit is kept
    assert out.sync["edited"]["status"] == "failed" and "from 13 frames on" in out.sync["edited"]["reason"]
    out = tiny_pipeline(media["face_noaudio_mp4"], media["silence_wav"], tmp_path / "silent.mp4")
    assert out.num_frames == Timeline.from_samples(48000).num_frames == 76


def _fake_dwpose(box):
    """68 points that span ``box`` as a face's landmarks would: the landmark box then passes the gate."""
    x1, y1, x2, y2 = box
    xs = np.linspace(x1 + 2, x2 - 2, 68)
    ys = np.linspace(y1 + 0.35 * (y2 - y1), y2 - 2, 68)
    points = np.stack([xs, ys], 1)
    points[29] = [(x1 + x2) / 2, y1 + 0.55 * (y2 - y1)]  # the lower nose bridge

    def dwpose(frames):
        dwpose.calls += 1
        return [points.copy() for _ in frames]

    dwpose.calls = 0
    return dwpose


@pytest.mark.slow
def test_no_landmark_box_turns_dwpose_off_in_depth_mode_and_the_report_says_which_box(
    tiny_pipeline, astronaut_png, media, tmp_path
):
    from PIL import Image

    detector = tiny_pipeline.face_detector
    box = detector.mtcnn.detect(np.asarray(Image.open(astronaut_png).convert("RGB"))[None])[0].boxes[0]
    fake, real = _fake_dwpose(box), detector.dwpose  # the tiny DWPose's random points never pass the gate
    detector.dwpose = fake
    sources = {}
    try:
        for landmark_box in (True, False):
            fake.calls = 0
            cfg = tiny_pipeline.config.with_options(landmark_box=landmark_box, cache=False)
            assert cfg.editor.use_depth  # the 3D stage runs in both
            inter = tmp_path / f"inter-{landmark_box}"
            out = tiny_pipeline(astronaut_png, media["tone_wav"], tmp_path / "o.mp4", config=cfg, intermediates=inter)
            faces = json.loads((inter / "faces.json").read_text())
            sources[landmark_box] = {f["face"]["box_source"] for f in faces}
            assert (fake.calls > 0) == landmark_box  # DWPose runs only with the landmark box
            (only,) = sources[landmark_box]
            assert out.report["frames"]["box_source"]["counts"][only] == out.num_frames
            assert out.report["frames"]["box_source"]["runs"] == [[0, out.num_frames - 1, only]]
    finally:
        detector.dwpose = real
    assert sources == {True: {"landmarks"}, False: {"mtcnn"}}


def test_a_call_cannot_change_a_load_time_option(tiny_pipeline, media, tmp_path):
    from joygen.errors import ConfigError

    with pytest.raises(ConfigError, match="min_face_size is a load-time option"):
        tiny_pipeline(media["face_mp4"], media["tone_wav"], tmp_path / "o.mp4",
                      config=tiny_pipeline.config.with_options(min_face_size=80))  # fmt: skip
    assert not (tmp_path / "o.mp4").exists()


def test_the_pipeline_feeds_the_unet_what_the_official_code_does(
    golden, tiny_pipeline, tiny_weights, mtcnn, demo_video, demo_wav, tmp_path
):
    """The shipped path, on the demo clip: the Whisper tokens and the 12-channel UNet input of frame 0.

    The face box comes from the real MTCNN (the fixture's box is the MTCNN box: DWPose is off), the depth map
    the editor receives is the fixture's (stage 2 has its own parity tests), the VAE and Whisper are the
    fixtures' random ones. What is checked is everything the pipeline itself does in between: decoding, the
    crop, the cached reference latents, the depth latents, assembling the 12 channels, the streamed tokens.
    """
    from joygen.editor.mouth_editor import MouthEditor, load_unet, load_vae
    from joygen.editor.whisper import WhisperFeatures
    from joygen.face3d.detection import FaceDetector
    from joygen.face3d.mouth_depth import MouthDepth
    from joygen.pipeline import JoyGenPipeline
    from joygen.weights.locator import WeightSet

    ref = np.load(golden / "vision" / "vae" / "unet_input_frame000.npz")
    chunks = np.load(golden / "audio" / "whisper_features.npz")
    fixture_depth = np.ascontiguousarray(ref["depth256_bgr"][..., ::-1])

    class FixtureDepth(MouthDepth):
        def render(self, *args, **kwargs):
            results = super().render(*args, **kwargs)
            for r in results:
                r.depth256 = fixture_depth
            return results

    stop = threading.Event()

    class RecordingEditor(MouthEditor):
        seen: list = []

        def generate(self, unet_input, tokens):
            self.seen.append((unet_input.clone(), tokens.clone()))
            stop.set()  # the first batch is all this test needs
            return super().generate(unet_input, tokens)

    pipe = JoyGenPipeline(
        editor=RecordingEditor(load_unet(tiny_weights / "unet"), load_vae(golden / "vision" / "vae_tiny")),
        whisper=WhisperFeatures.from_pretrained(golden / "audio" / "whisper" / "hf"),
        face_detector=FaceDetector(mtcnn),
        face_parser=tiny_pipeline.face_parser,
        weights=WeightSet({}),
        motion=tiny_pipeline.motion,
        depth=FixtureDepth(tiny_pipeline.depth.recon_net, tiny_pipeline.depth.face_model),
    )
    cfg = pipe.config.with_options(landmark_box=False, cache=False, crf=30, preset="ultrafast")
    with pytest.raises(Cancelled):
        pipe(demo_video, demo_wav, tmp_path / "o.mp4", config=cfg, cancel=stop)
    x, tokens = RecordingEditor.seen[0]
    assert x.shape == (8, 12, 32, 32) and tokens.shape == (8, 50, 384)
    # the fixtures' tolerances: latents within 1e-5 (vision README), Whisper 1e-5 of the max (audio README)
    assert np.abs(x[0].numpy() - ref["unet_input"][0]).max() <= 1e-5
    assert chunks["chunk_sel"][0] == 0
    expected = chunks["chunks_after_pe_sel"][0]
    assert np.abs(tokens[0].numpy() - expected).max() <= 1e-5 * np.abs(expected).max()
