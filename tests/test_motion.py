"""Stage 1: HuBERT, pitch and audio2secc (shared/golden/audio parity), formats and bad input."""

import json
import resource
import shutil

import numpy as np
import pytest
import torch
import yaml
from helpers import ffmpeg, rel_err

from joygen.errors import InputError, WeightsError
from joygen.media import load_audio
from joygen.motion.audio2secc import Audio2Secc, Audio2SeccConfig, f0_to_coarse, load_audio2secc
from joygen.motion.audio_to_motion import AudioToMotion, HubertFeatures, normalise, pitch
from joygen.timeline import Timeline
from joygen.trajectory import lip_trajectory

TOL = 1e-5


@pytest.fixture(scope="module")
def ref(golden):
    return np.load(golden / "audio" / "a2m_intermediates.npz")


@pytest.fixture(scope="module")
def a2m(golden):
    return AudioToMotion.from_pretrained(golden / "audio" / "hubert", golden / "audio" / "audio2secc_vae")


@pytest.fixture(scope="module")
def stereo(demo_wav):
    return load_audio(demo_wav, mono=False)


def test_front_end_inputs(ref, stereo):
    np.testing.assert_array_equal((stereo * 32768).astype(np.int16), ref["wav16k_int16"])
    np.testing.assert_array_equal(normalise(stereo[:, 0]), ref["input_values"])  # channel 0, whole-clip norm


def test_hubert_features_and_pitch(a2m, ref, stereo):
    feats = a2m.hubert(stereo[:, 0])
    assert feats.shape == (256, 1024)  # 250 frames zero-padded to a multiple of 8
    assert rel_err(feats.numpy(), ref["hubert"]) <= TOL
    np.testing.assert_array_equal(pitch(stereo.mean(axis=1, dtype=np.float32), 256), ref["f0"])


def test_intermediates_of_the_model(a2m, ref):
    model = a2m.audio2secc
    f0, hubert = torch.from_numpy(ref["f0"])[None], torch.from_numpy(ref["hubert"])[None]
    with torch.no_grad():
        np.testing.assert_array_equal(f0_to_coarse(f0[:, ::2])[0].numpy(), ref["f0_coarse"])
        assert rel_err(model.mel_encoder(hubert[:, ::2].transpose(1, 2))[0].T.numpy(), ref["mel_encoder_out"]) <= TOL
        g = model.condition(hubert, f0, 0.45)
        assert rel_err(g[0].T.numpy(), ref["cond"]) <= TOL
        g_sqz = model.vae.g_pre_net(g)
        assert rel_err(g_sqz[0].T.numpy(), ref["g_sqz"]) <= TOL
        torch.manual_seed(0)
        noise = torch.randn(1, 16, 32)
        np.testing.assert_array_equal(noise[0].numpy(), ref["prior_noise"])
        z = model.vae.prior_flow.reverse(noise * 0.2, g_sqz)
        assert rel_err(z[0].numpy(), ref["z_after_flow"]) <= TOL


def test_expression_sequence_reproduces_the_seeded_sampling(a2m, ref, stereo):
    out = a2m(stereo, seed=0, temperature=0.2, mouth_amp=0.45)
    assert out.expressions.shape == (128, 64) == (Timeline.from_samples(len(stereo)).expression_frames, 64)
    assert rel_err(out.expressions, ref["exp"]) <= TOL
    again = a2m(stereo)
    np.testing.assert_array_equal(out.expressions, again.expressions)
    assert not np.array_equal(a2m(stereo, seed=1).expressions, out.expressions)


def test_real_size_audio2secc_manifest_loads_strictly_nested_and_flat(golden, tmp_path):
    m = json.loads((golden / "audio" / "manifests" / "audio2secc_vae_real.json").read_text())
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.zeros(v["shape"], dtype=torch.int64) if v["dtype"] == "int64" else torch.randn(v["shape"], generator=gen)
             for k, v in m["keys"].items()}  # fmt: skip
    config = (golden / "audio" / "audio2secc_vae" / "config.yaml").read_text()
    for layout, sd in (("nested", {"model": state}), ("flat", {f"model.{k}": v for k, v in state.items()})):
        folder = tmp_path / layout
        folder.mkdir()
        (folder / "config.yaml").write_text(config)
        torch.save({"state_dict": sd, "global_step": 400000}, folder / "model_ckpt_steps_400000.ckpt")
        model = load_audio2secc(folder)
        assert list(model.state_dict()) == list(m["keys"])
        assert sum(p.numel() for p in model.parameters()) == m["n_parameters"]


def _write(folder, state, config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save({"state_dict": {"model": state}}, folder / "model_ckpt_steps_1.ckpt")
    return folder


def test_other_variants_are_recognised_and_refused(tmp_path):
    tiny = Audio2SeccConfig(
        feat=8, hidden=8, latent=4, enc_layers=1, dec_layers=1, glow_hidden=4, glow_layers=1, glow_flows=1
    )
    state = Audio2Secc(tiny).state_dict()
    sizes = {
        "joygen_sizes": {
            k: v for k, v in tiny.__dict__.items() if k not in ("use_mouth_amp", "use_eye_amp", "audio_in_dim")
        }
    }
    plain = {k: v for k, v in state.items() if not k.startswith(("pitch_", "cond_proj", "mouth_amp"))}
    with pytest.raises(WeightsError, match="plain VAEModel"):
        load_audio2secc(_write(tmp_path / "plain", plain, sizes))
    with pytest.raises(WeightsError, match="ICL"):
        load_audio2secc(
            _write(tmp_path / "icl", state, {**sizes, "task_cls": "tasks.os_avatar.icl_audio2motion_task.X"})
        )
    with pytest.raises(WeightsError, match="use_mouth_amp_embed"):
        load_audio2secc(_write(tmp_path / "flags", state, {**sizes, "use_mouth_amp_embed": False}))
    with pytest.raises(WeightsError, match="not an audio2secc"):
        load_audio2secc(_write(tmp_path / "other", {"x.weight": torch.zeros(1)}, {}))
    assert load_audio2secc(_write(tmp_path / "ok", state, sizes)).cfg == tiny


def test_real_size_hubert_manifest_loads(golden, tmp_path):
    from safetensors.torch import save_file
    from transformers import HubertConfig

    m = json.loads((golden / "audio" / "manifests" / "hubert_large_ls960_ft.json").read_text())
    HubertConfig(**m["config"]).to_json_file(tmp_path / "config.json")
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v["shape"], generator=gen) * 0.02 for k, v in m["checkpoint_keys"].items()}
    save_file(state, tmp_path / "model.safetensors")
    model = HubertFeatures.from_pretrained(tmp_path).model
    assert sum(p.numel() for p in model.parameters()) == m["n_parameters_hubert_model"]
    assert set(model.state_dict()) == set(m["hubert_model_state_dict"])
    loaded = model.state_dict()["feature_projection.projection.weight"]
    assert torch.equal(loaded, state["hubert.feature_projection.projection.weight"])


AUDIO_KINDS = {
    "wav8k": ["-ar", "8000", "-ac", "1"],
    "wav16k_stereo": ["-ar", "16000", "-ac", "2"],
    "wav44k": ["-ar", "44100", "-ac", "1"],
    "wav48k_stereo": ["-ar", "48000", "-ac", "2"],
    "mp3": ["-c:a", "libmp3lame"],
    "m4a": ["-c:a", "aac"],
    "ogg": ["-c:a", "libvorbis"],
    "flac": ["-c:a", "flac"],
    "mp4": ["-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25", "-shortest", "-c:v", "libx264", "-c:a", "aac"],
}


@pytest.fixture(scope="module")
def tiny_motion(tiny_weights):
    return AudioToMotion.from_pretrained(tiny_weights / "hubert", tiny_weights / "audio2secc")


@pytest.mark.parametrize("kind", sorted(AUDIO_KINDS))
def test_every_common_audio_kind_reaches_stage_one(tmp_path, demo_wav, tiny_motion, kind):
    ext = {"wav8k": "wav", "wav16k_stereo": "wav", "wav44k": "wav", "wav48k_stereo": "wav"}.get(kind, kind)
    path = tmp_path / f"voice.{ext}"
    opts = AUDIO_KINDS[kind]
    if kind == "mp4":
        ffmpeg("-i", str(demo_wav), *opts, str(path))
    else:
        ffmpeg("-i", str(demo_wav), *opts, str(path))
    audio = load_audio(path, mono=False)
    assert abs(len(audio) - 80265) < 2000  # 5 s at 16 kHz, whatever the source rate and codec
    out = tiny_motion(audio)
    assert out.expressions.shape == (Timeline.from_samples(len(audio)).expression_frames, 64)
    assert np.isfinite(out.expressions).all()
    assert (out.f0 > 0).mean() > 0.2  # speech is found voiced: the pitch front end got real audio


def test_very_short_and_silent_audio(tmp_path, media, tiny_motion):
    short = tmp_path / "short.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=200:sample_rate=16000:duration=0.1", str(short))
    out = tiny_motion(load_audio(short, mono=False))
    assert out.expressions.shape == (Timeline.from_samples(1600).expression_frames, 64) == (4, 64)
    silent = tiny_motion(load_audio(media["silence_wav"], mono=False))
    assert silent.expressions.shape == (76, 64) and np.isfinite(silent.expressions).all()
    assert (silent.f0 == 0).all()


@pytest.mark.slow
def test_ten_minutes_of_audio_runs_in_bounded_memory(tmp_path, tiny_motion):
    long = tmp_path / "long.wav"
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=600:c=pink:r=16000:a=0.1", "-ac", "1", str(long))
    audio = load_audio(long, mono=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = tiny_motion(audio)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out.expressions.shape == (Timeline.from_samples(len(audio)).expression_frames, 64) == (15000, 64)
    assert grown_mb < 1500, f"peak memory grew by {grown_mb:.0f} MB"


def test_corrupt_mp3_gives_a_message_or_audio(tmp_path, demo_audio, tiny_motion):
    data = bytearray(demo_audio.read_bytes())
    rng = np.random.default_rng(0)
    data[len(data) // 3 : len(data) // 3 + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    audio = load_audio(damaged, mono=False)  # ffmpeg skips the broken frames
    assert np.isfinite(tiny_motion(audio).expressions).all()
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="garbage.mp3"):
        load_audio(garbage, mono=False)


def test_lip_trajectory_follows_mouth_opening(tiny_weights):
    from joygen.face3d.bfm import FaceModel

    fm = FaceModel.from_folder(tiny_weights / "bfm")
    exp = np.zeros((3, 64), np.float32)
    exp[1, 0], exp[2, 0] = 1.0, 2.0  # the tiny face's expression 0 opens the mouth
    t = lip_trajectory(fm, exp)
    assert list(t["time_s"]) == [0, 0.04, 0.08]
    assert t["mouth_open_mm"][0] < t["mouth_open_mm"][1] < t["mouth_open_mm"][2]


def test_loader_copes_with_a_folder_without_config(golden, tmp_path):
    folder = tmp_path / "a2m"
    folder.mkdir()
    shutil.copyfile(
        golden / "audio" / "audio2secc_vae" / "model_ckpt_steps_400000.ckpt", folder / "model_ckpt_steps_400000.ckpt"
    )
    assert load_audio2secc(folder).cfg == Audio2SeccConfig()


def test_hubert_can_hear_the_mix_instead_of_channel_zero(a2m, stereo):
    official = a2m(stereo, keep_features=True)
    mixed = a2m(stereo, hubert_input="mix", keep_features=True)
    assert not np.array_equal(official.hubert.numpy(), mixed.hubert.numpy())  # the channels differ slightly
    np.testing.assert_array_equal(official.f0, mixed.f0)  # pitch always reads the mix
    with pytest.raises(ValueError):
        a2m(stereo, hubert_input="left")
