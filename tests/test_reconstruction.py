"""5-point alignment, the R-Net and the face model (shared/golden/vision parity)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat, savemat

from joygen.errors import WeightsError
from joygen.face3d.bfm import FaceModel, rotation_matrices
from joygen.face3d.reconstruction import (
    COEFF_SLICES,
    ReconNet,
    align_face,
    five_point_template,
    load_recon_net,
    split_coeffs,
)

NAMES = ["astronaut", "frame000", "frame060"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("template", ["mini", "public"])
def test_alignment(golden, name, template):
    ref = np.load(golden / "vision" / "align" / f"{name}.npz")
    lm_file = "mini_bfm/similarity_Lm3D_all.mat" if template == "mini" else "align/public_similarity_Lm3D_all.mat"
    t5 = five_point_template(loadmat(golden / "vision" / lm_file)["lm"])
    np.testing.assert_array_equal(t5, ref[f"{template}_lm3d_5"])
    image = np.asarray(Image.open(golden / "vision" / "inputs" / f"{name}.png").convert("RGB"))
    crop, al = align_face(image, ref["mtcnn_points"], t5)
    tp = ref[f"{template}_trans_params"]
    assert abs(al.scale - tp[2]) / tp[2] <= 1e-9
    assert np.abs(np.array(al.translation) - tp[3:]).max() / np.abs(tp[3:]).max() <= 1e-9
    np.testing.assert_array_equal(al.crop_params[3:], ref[f"{template}_crop_params"][3:])  # crop ints exact
    np.testing.assert_array_equal(crop, ref[f"{template}_crop224"])


def test_recon_net_manifest_loads_strictly(golden, tmp_path):
    m = json.loads((golden / "vision" / "manifests" / "recon_net_epoch20_net_recon.json").read_text())
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.zeros(s, dtype=torch.int64) if k in m["int64_keys"] else torch.randn(s, generator=gen) * 0.05
             for k, s in m["state_dict"].items()}  # fmt: skip
    torch.save({"net_recon": state, "opt_00": {"state": {}, "param_groups": []}, "sched_00": {}}, tmp_path / "e.pth")
    net = load_recon_net(tmp_path / "e.pth")
    assert list(net.state_dict()) == list(m["state_dict"])
    assert sum(p.numel() for p in net.parameters()) == m["num_parameters"]
    with torch.no_grad():
        out = net(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, 257)
    for part in m["coefficient_split"]:
        assert COEFF_SLICES[part["name"]] == slice(part["start"], part["stop"])


def test_broken_recon_checkpoint_is_refused(tmp_path):
    state = ReconNet(base=8).state_dict()
    state.pop("final_layers.6.bias")
    torch.save({"net_recon": state}, tmp_path / "e.pth")
    with pytest.raises(WeightsError, match="final_layers.6.bias"):
        load_recon_net(tmp_path / "e.pth")
    torch.save({"other": 1}, tmp_path / "x.pth")
    with pytest.raises(WeightsError, match="net_recon"):
        load_recon_net(tmp_path / "x.pth")


def test_split_covers_every_coefficient():
    parts = split_coeffs(torch.arange(257.0)[None])
    assert torch.equal(
        torch.cat([parts[k] for k in ("id", "exp", "tex", "angle", "gamma", "trans")], 1)[0], torch.arange(257.0)
    )


@pytest.fixture(scope="module")
def mini(golden):
    return FaceModel.from_folder(golden / "vision" / "mini_bfm")


def test_face_model_geometry(mini, golden):
    ref = np.load(golden / "vision" / "facemodel" / "facemodel_outputs.npz")
    c = torch.from_numpy(ref["coeffs"])
    with torch.no_grad():
        parts = split_coeffs(c)
        assert np.abs(mini.shape(parts["id"], parts["exp"]).numpy() - ref["face_shape"]).max() <= 1e-5
        assert np.abs(rotation_matrices(parts["angle"]).numpy() - ref["rotation"]).max() <= 1e-6
        v = mini.camera_vertices(c)
        assert np.abs(v.numpy() - ref["face_vertex"]).max() <= 1e-5
        assert np.abs(mini.project(v).numpy() - ref["face_proj"]).max() <= 1e-3
        assert np.abs(mini.landmarks68(v).numpy() - ref["lm68_img"]).max() <= 1e-3
        assert np.abs(mini.landmarks468(v).numpy() - ref["lm468_img"]).max() <= 1e-3
    centred = mini.mean_shape.view(-1, 3).double().mean(0)
    assert centred.abs().max() < 1e-6


def test_unmatched_mediapipe_points_are_tolerated(golden, tmp_path):
    folder = tmp_path / "bfm"
    folder.mkdir()
    for name in ("BFM_model_front.mat", "similarity_Lm3D_all.mat"):
        (folder / name).write_bytes((golden / "vision" / "mini_bfm" / name).read_bytes())
    index = np.arange(468)
    index[[93, 127, 132, 234]] = -999  # cheek/ear points some public versions leave unmatched
    np.save(folder / "index_mp468_from_mesh35709.npy", index)
    fm = FaceModel.from_folder(folder)
    assert fm.valid468.sum() == 464 and int(fm.index468.min()) >= 0
    with torch.no_grad():
        lm = fm.landmarks468(fm.camera_vertices(torch.zeros(1, 257)))
    assert torch.isfinite(lm).all()
    index[61] = -999  # an outer-lip point: the mouth mask would be wrong
    np.save(folder / "index_mp468_from_mesh35709.npy", index)
    with pytest.raises(WeightsError, match="outer-lip"):
        FaceModel.from_folder(folder)


def test_missing_bfm_keys_are_reported(tmp_path, golden):
    model = loadmat(golden / "vision" / "mini_bfm" / "BFM_model_front.mat")
    del model["exBase"]
    folder = tmp_path / "bfm"
    folder.mkdir()
    savemat(folder / "BFM_model_front.mat", {k: v for k, v in model.items() if not k.startswith("__")})
    for name in ("similarity_Lm3D_all.mat", "index_mp468_from_mesh35709.npy"):
        (folder / name).write_bytes((golden / "vision" / "mini_bfm" / name).read_bytes())
    with pytest.raises(WeightsError, match="exBase"):
        FaceModel.from_folder(folder)
