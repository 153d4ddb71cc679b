"""The weights table, resolution order, the combined missing-weights error, the tiny set and the importer."""

import json
import re
import shutil

import pytest
import torch

from joygen.errors import WeightsError
from joygen.weights.locator import ARTIFACTS, EDITOR_ARTIFACTS, MARKER, WeightsLocator

FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"


def test_table_pins_every_public_repo():
    folders = [a.folder for a in ARTIFACTS.values()]
    assert len(folders) == len(set(folders))
    for art in ARTIFACTS.values():
        assert art.variants and all(art.variants)
        if art.public_repo:
            assert re.fullmatch(r"[0-9a-f]{40}", art.public_revision), art.name
        for digest in art.sha256.values():
            assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert {"stabilityai/sd-vae-ft-mse", "openai/whisper-tiny", "facebook/hubert-large-ls960-ft", "yzd-v/DWPose"} <= {
        a.public_repo for a in ARTIFACTS.values()
    }


def test_tiny_set_is_complete_and_marked(tiny_weights):
    ws = WeightsLocator(tiny_weights, use_public=False).resolve(list(EDITOR_ARTIFACTS))
    assert ws.tiny and all(r.source == f"local folder {tiny_weights}" for r in ws.artifacts.values())
    marker = json.loads((tiny_weights / MARKER).read_text())
    assert marker["kind"] == "tiny" and "meaningless" in marker["note"]


def test_missing_weights_are_listed_together(tmp_path):
    locator = WeightsLocator(tmp_path / "empty", repo_id=None)
    with pytest.raises(WeightsError) as err:
        locator.resolve(["unet", "vae", "whisper", "bfm"])
    msg = str(err.value)
    for name in (
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "whisper/tiny.pt",
        "bfm/BFM_model_front.mat",
    ):
        assert name in msg
    assert "weights import" in msg and "weights tiny" in msg and "HF_HUB_OFFLINE" in msg
    assert "stabilityai/sd-vae-ft-mse" in msg and "JOYGEN_WEIGHTS_REPO" in msg
    assert msg.count("  - ") == 4  # one entry per missing artifact


def _fake_hub_cache(cache, repo, revision, files: dict):
    """A Hugging Face cache entry as hf_hub_download leaves it (offline resolution reads this)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / revision
    for rel, src in files.items():
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, snap / rel)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)


def test_hub_bundle_and_public_repo_from_the_cache(tmp_path, tiny_weights, monkeypatch):
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    unet = {f"unet/{f.name}": f for f in (tiny_weights / "unet").iterdir()}
    _fake_hub_cache(cache, "someone/joygen-weights", FAKE_SHA, unet)
    vae = ARTIFACTS["vae"]
    _fake_hub_cache(cache, vae.public_repo, vae.public_revision, {f.name: f for f in (tiny_weights / "vae").iterdir()})
    locator = WeightsLocator(tmp_path / "empty", repo_id="someone/joygen-weights")
    got = locator.resolve(["unet", "vae"])
    assert got["unet"].source == "hub someone/joygen-weights"
    assert got["unet"].folder.name == "unet" and (got["unet"].folder / "config.json").is_file()
    assert got["vae"].source == f"hub {vae.public_repo}@{vae.public_revision}"
    # a local folder wins over the Hub
    assert WeightsLocator(tiny_weights, repo_id="someone/joygen-weights").find("unet").source.startswith("local")


def test_mtcnn_comes_from_the_facenet_wheel():
    found = WeightsLocator("/nonexistent").find("mtcnn")
    if found is None:
        pytest.skip("facenet-pytorch is not installed")
    assert found.source.startswith("package facenet-pytorch")
    from joygen.weights.locator import file_sha256

    assert {n: file_sha256(p) for n, p in found.files.items()} == ARTIFACTS["mtcnn"].sha256


def test_status_rows_say_how_to_supply(tmp_path):
    rows = {r["name"]: r for r in WeightsLocator(tmp_path).status()}
    assert set(rows) == set(ARTIFACTS)
    assert not rows["unet"]["found"] and "weights import" in rows["unet"]["how"]


# -- importer ---------------------------------------------------------------------------------------


@pytest.fixture
def official_tree(tmp_path, tiny_weights, golden):
    """An official-layout pretrained_models/ tree made of tiny weights and the golden fixtures."""
    pm = tmp_path / "bundle" / "pretrained_models"
    shutil.copytree(tiny_weights / "unet", pm / "joygen")
    shutil.copytree(golden / "vision" / "vae_tiny", pm / "sd-vae-ft-mse")
    (pm / "whisper").mkdir(parents=True)
    shutil.copyfile(golden / "audio" / "whisper" / "tiny_random.pt", pm / "whisper" / "tiny.pt")
    (pm / "face-parse-bisent").mkdir()
    shutil.copyfile(tiny_weights / "face_parsing" / "79999_iter.pth", pm / "face-parse-bisent" / "79999_iter.pth")
    shutil.copytree(golden / "audio" / "hubert", pm / "audio2motion" / "hubert")
    shutil.copytree(
        golden / "audio" / "audio2secc_vae", pm / "audio2motion" / "240210_real3dportrait_orig" / "audio2secc_vae"
    )
    (pm / "face_recon_feat0.2_augment").mkdir()
    net = torch.load(tiny_weights / "face_recon" / "epoch_20.pth", weights_only=True)["net_recon"]
    official = {"net_recon": net, "opt_00": {"state": {}, "param_groups": []}, "sched_00": {}}
    torch.save(official, pm / "face_recon_feat0.2_augment" / "epoch_20.pth")
    shutil.copytree(golden / "vision" / "mini_bfm", pm / "BFM")
    return tmp_path / "bundle"  # the archive's extra level: the importer finds pretrained_models/ inside


def test_import_writes_joygens_layout(official_tree, tmp_path):
    from joygen.weights.importer import import_official

    out = import_official(official_tree, tmp_path / "out", any_size=True, log=lambda _m: None)
    ws = WeightsLocator(out, use_public=False).resolve(
        ["unet", "vae", "whisper", "face_parsing", "mtcnn", "hubert", "audio2secc", "face_recon", "bfm"]
    )
    assert not ws.tiny
    marker = json.loads((out / MARKER).read_text())
    assert marker["kind"] == "imported" and "unet/diffusion_pytorch_model.safetensors" in marker["sha256"]
    assert set(torch.load(out / "face_recon" / "epoch_20.pth", weights_only=True)) == {"net_recon"}
    assert not list(out.glob(".joygen-import-*"))


def test_import_refuses_non_official_sizes_listing_each(official_tree, tmp_path):
    from joygen.weights.importer import import_official

    with pytest.raises(WeightsError) as err:
        import_official(official_tree, tmp_path / "out", log=lambda _m: None)
    msg = str(err.value)
    assert "nothing was written" in msg
    assert "JoyGen UNet config differs" in msg and "base width 8" in msg and "468 vertices" in msg
    assert "official R-Net" in msg
    assert not (tmp_path / "out" / "unet").exists()


def test_import_refuses_a_broken_file_even_with_any_size(official_tree, tmp_path):
    from joygen.weights.importer import import_official

    path = official_tree / "pretrained_models" / "face-parse-bisent" / "79999_iter.pth"
    state = torch.load(path, weights_only=True)
    state.pop("cp.arm16.conv.conv.weight")
    torch.save(state, path)
    with pytest.raises(WeightsError, match="cp.arm16.conv.conv.weight"):
        import_official(official_tree, tmp_path / "out", any_size=True, log=lambda _m: None)


def test_no_network_fails_fast_instead_of_retrying(tmp_path, monkeypatch):
    # "Fast" is by construction, not by a stopwatch: with the Hub's host unresolvable, no download (and so none
    # of huggingface_hub's ~20 s of retries per file) is even tried.
    import huggingface_hub

    import joygen.weights.locator as w

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://no-such-host.invalid")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("a download was tried"))
    w._REACHABLE.clear()
    assert WeightsLocator(tmp_path).find("vae") is None
    assert not w.hub_reachable()


def test_look_only_mode_never_downloads(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("downloaded"))
    rows = WeightsLocator(tmp_path, download=False).status(["vae", "whisper"])
    assert [r["found"] for r in rows] == [False, False]


def test_the_tiny_models_in_memory_equal_the_written_set(tiny_weights, tiny_pipeline, media, tmp_path):
    # diffusers' get_dummy_components idea: the same tiny models without files, for tests where a file is not
    # the point. Built with the same seeds in the same order, so every parameter equals the loaded one.
    from joygen.pipeline import JoyGenPipeline
    from joygen.weights.tiny import tiny_components

    parts = tiny_components()
    pairs = {
        "unet": (parts["editor"].unet, tiny_pipeline.editor.unet),
        "vae": (parts["editor"].vae, tiny_pipeline.editor.vae),
        "whisper": (parts["whisper"].encoder, tiny_pipeline.whisper.encoder),
        "face_parsing": (parts["face_parser"], tiny_pipeline.face_parser),
        "face_recon": (parts["depth"].recon_net, tiny_pipeline.depth.recon_net),
        "bfm": (parts["depth"].face_model, tiny_pipeline.depth.face_model),
        "hubert": (parts["motion"].hubert.model, tiny_pipeline.motion.hubert.model),
        "audio2secc": (parts["motion"].audio2secc, tiny_pipeline.motion.audio2secc),
    }
    for name, (built, loaded) in pairs.items():
        a, b = built.state_dict(), loaded.state_dict()
        assert a.keys() == b.keys(), name
        for key in a:  # exact: the same seeded draws, and float32 files store them unchanged
            assert torch.equal(a[key].float(), b[key].float()), (name, key)
    pipe = JoyGenPipeline(**parts)
    out = pipe(
        media["face_noaudio_mp4"],
        media["tone_wav"],
        tmp_path / "o.mp4",
        config=pipe.config.with_options(landmark_box=False, sync_score=False),
    )
    from joygen.timeline import Timeline

    assert out.num_frames == Timeline.from_samples(16_000).num_frames  # the 1 s tone
    assert out.tiny_weights and not out.frames_without_face
