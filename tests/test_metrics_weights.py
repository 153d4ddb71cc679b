"""The metric networks in joygen's weights table and tiny set: SyncNet and the FID Inception."""

import json
import re
import shutil

import torch

from joygen.weights import (
    ARTIFACTS,
    DEPTH_ARTIFACTS,
    EDITOR_ARTIFACTS,
    MARKER,
    METRIC_ARTIFACTS,
    MOTION_ARTIFACTS,
    WeightsLocator,
)


def test_table_rows_for_the_metrics():
    sync, inception = ARTIFACTS["syncnet"], ARTIFACTS["inception"]
    assert sync.file_sets == [["syncnet/syncnet_v2.model"]]
    assert sync.public_repo == "ByteDance/LatentSync-1.6" and re.fullmatch(r"[0-9a-f]{40}", sync.public_revision)
    assert sync.public_files == ("auxiliary/syncnet_v2.model",)
    assert re.fullmatch(r"[0-9a-f]{64}", sync.sha256["syncnet_v2.model"])
    # no Hub copy of the FID weights is pinned: a download address and the digest instead
    assert inception.public_repo is None and inception.download_url.endswith(inception.variants[0][0])
    name = inception.variants[0][0]
    digest = inception.sha256[name]
    assert name.split("-")[-1].split(".")[0] == digest[:8]  # torch.hub's convention: the name carries the digest
    # optional: an edit never needs them
    assert set(METRIC_ARTIFACTS) == {"syncnet", "inception"} and sync.optional and inception.optional
    assert not set(METRIC_ARTIFACTS) & set(EDITOR_ARTIFACTS + MOTION_ARTIFACTS + DEPTH_ARTIFACTS)


def test_space_card_preloads_syncnet_from_its_subfolder():
    import yaml
    from helpers import ROOT

    card = yaml.safe_load((ROOT / "README.md").read_text().split("---\n")[1])
    a = ARTIFACTS["syncnet"]
    assert f"{a.public_repo} {','.join(a.public_files)} {a.public_revision}" in card["preload_from_hub"]
    assert a.public_repo in card["models"]


def test_missing_metric_weights_say_where_to_get_them(tmp_path):
    locator = WeightsLocator(tmp_path / "empty")
    how = locator.how_to_supply(ARTIFACTS["syncnet"])
    assert (
        "syncnet/syncnet_v2.model" in how and "ByteDance/LatentSync-1.6" in how and "auxiliary/syncnet_v2.model" in how
    )
    how = locator.how_to_supply(ARTIFACTS["inception"])
    assert "github.com/mseitzer/pytorch-fid" in how and "6726825d0af5f729" in how


def test_public_repo_files_resolve_from_their_subfolder(tmp_path, monkeypatch, golden):
    """The Hub copy keeps the file in auxiliary/; joygen's layout names it syncnet/syncnet_v2.model."""
    import huggingface_hub.constants as hc

    a = ARTIFACTS["syncnet"]
    cache = tmp_path / "hub"
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    snap = cache / f"models--{a.public_repo.replace('/', '--')}" / "snapshots" / a.public_revision / "auxiliary"
    snap.mkdir(parents=True)
    shutil.copyfile(golden / "syncnet" / "syncnet_v2_random.model", snap / "syncnet_v2.model")
    found = WeightsLocator(tmp_path / "empty").find("syncnet")
    assert found.source == f"hub {a.public_repo}@{a.public_revision}"
    assert found.files["syncnet_v2.model"].name == "syncnet_v2.model"


def test_tiny_set_has_small_metric_networks_that_load(tiny_weights):
    from joygen.metrics.fid import TINY_WIDTH_DIVISOR, load_inception
    from joygen.metrics.syncnet import TINY_WIDTHS, load_syncnet

    ws = WeightsLocator(tiny_weights, use_public=False).resolve(list(METRIC_ARTIFACTS))
    assert ws.tiny
    sync_file = ws["syncnet"].files["syncnet_v2.model"]
    assert sync_file.stat().st_size < 2_000_000  # the real one is 54 MB
    with open(sync_file, "rb") as fh:
        assert fh.read(2) != b"PK"  # legacy (non-zip) serialization, like the real file
    assert load_syncnet(sync_file).widths == TINY_WIDTHS
    inception = load_inception(ws["inception"].files["pt_inception-2015-12-05-6726825d.pth"])
    assert inception.width_divisor == TINY_WIDTH_DIVISOR and inception.feature_dim == 2048 // TINY_WIDTH_DIVISOR
    marker = json.loads((tiny_weights / MARKER).read_text())
    assert {"syncnet", "inception"} <= set(marker["artifacts"])
    with torch.no_grad():
        assert inception(torch.rand(1, 3, 64, 64)).shape == (1, inception.feature_dim)
