"""SyncNet LSE-C / LSE-D: parity with the official syncnet_python ``evaluate`` (shared/golden/syncnet).

Every check calls the functions ``python -m joygen eval`` uses (`joygen.metrics.protocol.evaluate`,
`evaluate_clip`, `distances`, `joygen.metrics.mfcc.mfcc`, `joygen.metrics.syncnet.load_syncnet`). Thresholds are
the golden README's (section 5), which are >= 6x the largest differences its authors observed; what this machine
(AMD EPYC, AVX2, torch 2.13 CPU) measured is stated beside each.
"""

import collections
import hashlib
import json
import subprocess

import numpy as np
import pytest
import torch

from joygen.errors import WeightsError
from joygen.metrics import mfcc as mfcc_mod
from joygen.metrics.protocol import distances, evaluate, evaluate_clip, extract_audio, read_image, summarise
from joygen.metrics.syncnet import OFFICIAL_WIDTHS, TINY_WIDTHS, SyncNet, load_syncnet

CASES = ("sync", "delay4", "clip1s")


@pytest.fixture(scope="module")
def gdir(golden):
    d = golden / "syncnet"
    if not (d / "syncnet_golden.npz").is_file():
        pytest.skip(f"SyncNet fixtures not found in {d}")
    return d


@pytest.fixture(scope="module")
def ref(gdir):
    return np.load(gdir / "syncnet_golden.npz")


@pytest.fixture(scope="module")
def facts(gdir):
    return json.loads((gdir / "golden_syncnet.json").read_text())


@pytest.fixture(scope="module")
def net(gdir):
    return load_syncnet(gdir / "syncnet_v2_random.model")


@pytest.fixture(scope="module")
def jpgs(gdir):
    return sorted((gdir / "inputs" / "frames_jpg").glob("*.jpg"))


@pytest.fixture(scope="module")
def results(ref, net, jpgs):
    """Each case evaluated once (about 10 s for a 120-window case on 2 CPU cores)."""
    return {c: evaluate(jpgs[: int(ref[f"{c}_n_frames"])], ref[f"{c}_audio_int16"], net) for c in CASES}


def test_frames_decode_exactly(ref, jpgs):
    digests = [hashlib.sha256(read_image(p).tobytes()).hexdigest() for p in jpgs]
    assert digests == list(ref["frames_sha256"])  # exact: the decoded JPEG pixels


@pytest.mark.parametrize("case", CASES)
def test_mfcc_matches_python_speech_features(ref, case):
    got = mfcc_mod.mfcc(ref[f"{case}_audio_int16"])
    assert got.shape == ref[f"{case}_mfcc"].shape
    # README threshold 1e-8 (float64); measured here 4.1e-14
    assert np.abs(got - ref[f"{case}_mfcc"]).max() < 1e-8
    # the network input is float32(mfcc); README threshold 1e-5, measured here 0 (bit-exact)
    assert np.abs(got.astype(np.float32) - ref[f"{case}_cct"][0, 0]).max() < 1e-5


def test_silent_frames_use_the_float64_eps_floor(ref):
    got = mfcc_mod.mfcc(ref["delay4_audio_int16"])  # 2560 leading zeros: frames 0-14 are silent
    assert np.allclose(got[0, :15], np.log(np.finfo(np.float64).eps), atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_evaluate_matches_official(results, ref, case):
    r = results[case]
    # exact: frame and window bookkeeping, argmin and offset
    assert r.n_frames == ref[f"{case}_n_frames"] and r.min_length == ref[f"{case}_min_length"]
    assert r.n_windows == ref[f"{case}_lastframe"] == ref[f"{case}_dists"].shape[0]
    assert r.minidx == ref[f"{case}_minidx"]
    assert r.offset == ref[f"{case}_offset"]
    # embeddings: README threshold 1e-4 (values <= 4); measured here im_feat 4.0e-5, cc_feat 2.6e-5
    assert np.abs(r.im_feat - ref[f"{case}_im_feat"]).max() < 1e-4
    assert np.abs(r.cc_feat - ref[f"{case}_cc_feat"]).max() < 1e-4
    # distances and everything derived: README threshold 2e-4 (values 21-46); measured here dists 8.0e-5,
    # mdist 7.6e-6, fdist/fconf/fconfm <= 8.4e-5, min dist 3.8e-6, conf 3.8e-6
    for name in ("dists", "mdist", "fdist", "fconf", "fconfm"):
        assert np.abs(getattr(r, name) - ref[f"{case}_{name}"]).max() < 2e-4, name
    assert abs(r.lse_d - float(ref[f"{case}_minval"])) < 2e-4
    assert abs(r.lse_c - float(ref[f"{case}_conf"])) < 2e-4


def test_delay4_reports_the_fixture_offset(results, facts):
    # random weights put the minimum at the +15 end for both clips (golden README section 4): exact
    assert results["delay4"].offset == facts["cases"]["delay4"]["av_offset"] == 15
    assert results["sync"].offset == facts["cases"]["sync"]["av_offset"]
    assert results["clip1s"].offset == facts["cases"]["clip1s"]["av_offset"] == -15


@pytest.mark.parametrize("case", CASES)
def test_distance_rule_from_the_stored_embeddings(ref, case):
    dists = distances(ref[f"{case}_im_feat"], ref[f"{case}_cc_feat"])
    # the same float32 arithmetic as calc_pdist; measured here 0 (bit-exact); bound: float32 rounding of 21-46
    assert np.abs(dists - ref[f"{case}_dists"]).max() < 1e-5
    mdist, minval, minidx, median, conf, *_ = summarise(dists)
    assert np.abs(mdist - ref[f"{case}_mdist"]).max() < 1e-5  # measured here 0
    assert minidx == ref[f"{case}_minidx"]
    assert abs(conf - float(ref[f"{case}_conf"])) < 1e-5  # lower median of 31 values: measured here 0


def test_lower_median_convention():
    # torch.median of an even count is the lower middle value (numpy would average): LSE-C uses it
    d = np.tile(np.array([4.0, 1.0, 3.0, 2.0], np.float32), (3, 1))
    _, minval, minidx, median, conf, *_ = summarise(d, vshift=2)
    assert (minval, minidx, median, conf) == (1.0, 1, 2.0, 1.0)


def test_audio_is_read_unscaled_int16(gdir, ref, tmp_path):
    samples = extract_audio(gdir / "inputs" / "clip_delay4.avi", tmp_path / "a.wav")
    assert samples.dtype == np.int16 and np.array_equal(samples, ref["delay4_audio_int16"])  # exact


def _system_ffmpeg_51() -> str | None:
    import shutil

    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    out = subprocess.run([exe, "-version"], capture_output=True, text=True).stdout
    return exe if out.startswith("ffmpeg version 5.1") else None


def test_clip_path_is_exact_with_the_fixtures_ffmpeg(gdir, ref, net, tmp_path, monkeypatch):
    """The whole clip path (JPEG dump + audio + evaluate) with the ffmpeg that made the fixtures (5.1.x)."""
    exe = _system_ffmpeg_51()
    if exe is None:
        pytest.skip("no ffmpeg 5.1.x on PATH: the fixture JPEGs come from ffmpeg 5.1.9 (joygen's bundled one differs)")
    import joygen.media as media

    monkeypatch.setattr(media, "ffmpeg_exe", lambda: exe)
    r = evaluate_clip(gdir / "inputs" / "clip_1s.avi", net, tmp_path)
    frames = sorted((tmp_path / "frames").glob("*.jpg"))
    digests = [hashlib.sha256(read_image(p).tobytes()).hexdigest() for p in frames]
    assert digests == list(ref["frames_sha256"][:25])  # exact: the same JPEGs as the official dump
    assert r.offset == ref["clip1s_offset"]
    assert abs(r.lse_d - float(ref["clip1s_minval"])) < 2e-4 and abs(r.lse_c - float(ref["clip1s_conf"])) < 2e-4


def test_clip_path_with_the_bundled_ffmpeg_moves_as_documented(gdir, facts, net, tmp_path):
    """README section 7: ffmpeg 9.0.2 (imageio-ffmpeg 0.8.1) writes other JPEGs; the official code then gives these
    numbers. joygen's default ffmpeg reproduces them, which is the difference docs/evaluation.md states."""
    from joygen.media import ffmpeg_version

    if not ffmpeg_version().startswith(("n9.0.2", "9.0.2")):
        pytest.skip(f"the measured difference is for ffmpeg 9.0.2; this one is {ffmpeg_version()}")
    seen = facts["observed"]["ffmpeg_9.0.2_static_instead_of_5.1.9"]["clip1s"]
    r = evaluate_clip(gdir / "inputs" / "clip_1s.avi", net, tmp_path)
    assert r.offset == seen["av_offset"]
    # same threshold as the parity checks (2e-4); measured here 0 for both (the README's numbers to the last bit)
    assert abs(r.lse_d - seen["min_dist"]) < 2e-4 and abs(r.lse_c - seen["confidence"]) < 2e-4


# -- loading -----------------------------------------------------------------------------------------------------


def _manifest_state(gdir, counters=True):
    manifest = json.loads((gdir / "manifests" / "syncnet_v2_real.json").read_text())
    g = torch.Generator().manual_seed(0)
    state = collections.OrderedDict()
    for entry in manifest["entries"]:
        if entry["dtype"] == "int64":
            if counters:
                state[entry["key"]] = torch.tensor(0, dtype=torch.int64)
        else:
            state[entry["key"]] = torch.randn(entry["shape"], generator=g)
    return manifest, state


def test_the_real_key_manifest_loads_strictly(gdir, tmp_path):
    manifest, state = _manifest_state(gdir)
    assert len(state) == manifest["n_entries"] == 102
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path, _use_new_zipfile_serialization=False)  # the real file's legacy format
    net = load_syncnet(path)
    assert net.widths == OFFICIAL_WIDTHS
    own = net.state_dict()
    assert list(own) == [e["key"] for e in manifest["entries"]]  # same keys, same order
    assert all(torch.equal(own[k], v) for k, v in state.items())  # every value copied
    assert sum(p.numel() for p in net.parameters()) == manifest["n_parameters"]


def test_files_without_counters_and_in_float16_load(gdir, tmp_path):
    _, state = _manifest_state(gdir, counters=False)
    state = collections.OrderedDict((k, v.half()) for k, v in state.items())
    state._metadata = collections.OrderedDict()  # state_dict()'s version metadata without counters
    path = tmp_path / "half.model"
    torch.save(state, path)
    net = load_syncnet(path)
    assert next(net.parameters()).dtype == torch.float32
    assert torch.equal(net.state_dict()["netfcaud.3.weight"], state["netfcaud.3.weight"].float())


@pytest.mark.parametrize("change", ["extra", "missing", "shape", "module"])
def test_inconsistent_files_are_refused_with_the_reason(gdir, tmp_path, change):
    _, state = _manifest_state(gdir)
    if change == "extra":
        state["netfcaud.9.weight"] = torch.zeros(3)
        expect = "unexpected key"
    elif change == "missing":
        del state["netcnnlip.4.bias"]
        expect = "missing key"
    elif change == "shape":
        state["netcnnaud.4.bias"] = torch.zeros(191)
        expect = "netcnnaud.4.bias"
    else:
        state = {"state_dict": state}
        expect = "training checkpoint"
    path = tmp_path / "bad.model"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=expect):
        load_syncnet(path)


def test_tiny_widths_keep_the_input_sizes():
    net = SyncNet(TINY_WIDTHS).eval()
    with torch.no_grad():
        assert net.forward_lip(torch.rand(2, 3, 5, 224, 224) * 255).shape == (2, TINY_WIDTHS.embedding)
        assert net.forward_aud(torch.randn(2, 1, 13, 20)).shape == (2, TINY_WIDTHS.embedding)
