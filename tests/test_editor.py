"""The editor: VAE preprocessing, 12-channel UNet input and decode (shared/golden/vision parity)."""

import json

import numpy as np
import pytest
import torch

from joygen.editor.mouth_editor import OFFICIAL_UNET_CONFIG, OFFICIAL_VAE_CONFIG, MouthEditor, load_unet, load_vae
from joygen.errors import WeightsError


@pytest.fixture(scope="module")
def editor(golden, tiny_weights):
    return MouthEditor(load_unet(tiny_weights / "unet"), load_vae(golden / "vision" / "vae_tiny"))


@pytest.fixture(scope="module")
def ref(golden):
    return np.load(golden / "vision" / "vae" / "unet_input_frame000.npz")


def rgb(bgr):
    return np.ascontiguousarray(bgr[..., ::-1])


def test_preprocessing_masks_in_unit_space(editor, ref):
    face = rgb(ref["face256_bgr"])[None]
    np.testing.assert_array_equal(editor.to_tensor(face, mask_lower=True).numpy(), ref["x_masked"])
    np.testing.assert_array_equal(editor.to_tensor(face).numpy(), ref["x_ref"])
    np.testing.assert_array_equal(editor.to_tensor(rgb(ref["depth256_bgr"])[None]).numpy(), ref["x_depth"])


def test_twelve_channel_unet_input(editor, ref):
    face, depth = rgb(ref["face256_bgr"])[None], rgb(ref["depth256_bgr"])[None]
    with torch.no_grad():
        x = editor.unet_input(face, depth).numpy()
        no_depth = editor.unet_input(face).numpy()
    assert x.shape == (1, 12, 32, 32)
    assert np.abs(x - ref["unet_input"]).max() <= 1e-5  # masked | reference | depth
    assert np.abs(no_depth[:, 8:] - ref["latent_nodepth"]).max() <= 1e-5  # the black-image latent
    assert np.abs(no_depth[:, :8] - ref["unet_input"][:, :8]).max() <= 1e-5


def test_decode_to_uint8(editor, golden):
    ref = np.load(golden / "vision" / "vae" / "decode.npz")
    for key in ("random", "ref"):
        with torch.no_grad():
            out = editor.decode(torch.from_numpy(ref[f"latent_{key}"]))
        diff = np.abs(out.astype(int) - rgb(ref[f"decoded_{key}_bgr"]))
        assert out.dtype == np.uint8 and out.shape == (1, 256, 256, 3)
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.001


def test_batches_give_the_same_faces_as_single_frames(editor, ref):
    face = rgb(ref["face256_bgr"])
    faces = np.stack([face, face[:, ::-1].copy()])
    tokens = torch.randn(2, 50, 384, generator=torch.Generator().manual_seed(0))
    both = editor(faces, tokens)
    one = editor(faces[1:], tokens[1:])
    assert np.abs(both[1].astype(int) - one[0]).max() <= 1


def _meta_params(cls, config):
    with torch.device("meta"):
        return sum(p.numel() for p in cls(**config).parameters())


def test_real_size_architectures_from_the_official_configs():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    assert _meta_params(UNet2DConditionModel, OFFICIAL_UNET_CONFIG) == 849_959_364
    assert _meta_params(AutoencoderKL, OFFICIAL_VAE_CONFIG) == 83_653_863


def test_a_musetalk_unet_is_refused_with_a_reason(tmp_path, tiny_weights):
    cfg = json.loads((tiny_weights / "unet" / "config.json").read_text())
    from diffusers import UNet2DConditionModel

    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    cfg["in_channels"] = 8
    UNet2DConditionModel(**cfg).save_pretrained(tmp_path / "unet8")
    with pytest.raises(WeightsError, match="MuseTalk"):
        load_unet(tmp_path / "unet8")
