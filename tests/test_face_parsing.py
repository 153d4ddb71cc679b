"""BiSeNet: strict loading of the real checkpoint layout, and the mask it gives."""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from joygen.editor.face_parsing import BiSeNet, FaceParser, load_bisenet


def manifest_state(golden):
    m = json.loads((golden / "vision" / "manifests" / "bisenet_79999_iter.json").read_text())
    gen = torch.Generator().manual_seed(0)
    state = {
        k: torch.zeros(s, dtype=torch.int64) if k in m["int64_keys"] else torch.randn(s, generator=gen)
        for k, s in m["state_dict"].items()
    }
    return m, state


def test_real_manifest_loads_strictly(golden, tmp_path):
    m, state = manifest_state(golden)
    torch.save(state, tmp_path / "79999_iter.pth")
    net = load_bisenet(tmp_path / "79999_iter.pth")
    assert list(net.state_dict()) == list(m["state_dict"])  # same keys, same order
    assert sum(p.numel() for p in net.parameters()) == m["num_parameters"]
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 512, 512)).shape == (1, 19, 512, 512)


def test_a_wrong_checkpoint_is_refused(golden, tmp_path):
    _, state = manifest_state(golden)
    del state["ffm.conv1.weight"]
    torch.save(state, tmp_path / "bad.pth")
    from joygen.errors import WeightsError

    with pytest.raises(WeightsError, match="ffm.conv1.weight"):
        load_bisenet(tmp_path / "bad.pth")


def test_parser_gives_512_masks_of_0_and_255(tiny_weights):
    parser = FaceParser.from_pretrained(tiny_weights / "face_parsing" / "79999_iter.pth")
    crops = [np.random.default_rng(i).integers(0, 256, (s, s, 3), dtype=np.uint8) for i, s in enumerate((300, 711))]
    masks = parser(crops)
    assert masks.shape == (2, 512, 512) and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= {0, 255}
    assert (masks == 255).mean() > 0.5  # the tiny parser calls (almost) everything skin
    with ThreadPoolExecutor(2) as pool:  # the pipeline resizes in its thread pool: the same masks, exactly
        assert np.array_equal(parser(crops, pool.map), masks)


def test_base_width_is_read_from_the_checkpoint():
    net = BiSeNet(base=8)
    again = BiSeNet.from_state_dict(net.state_dict())
    assert again.cp.resnet.conv1.out_channels == 8
