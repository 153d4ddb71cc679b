"""A complete set of tiny random-weight checkpoints in joygen's layout, for tests and smoke runs.

Every artifact the pipeline loads is written in the same file format and folder as the real one, only
with small sizes and random (seeded) values, so that every code path runs offline in seconds. Everything
produced with these weights is meaningless; the folder's ``joygen_weights.json`` says ``"kind": "tiny"``
and the pipeline, the CLI and the app say so on every run.

Two artifacts are not random: the MTCNN detector is copied from the facenet-pytorch wheel (it is small, and
a random detector would never find a face), and the face parser is set to call every pixel "skin" so that
the paste-back visibly replaces the lower face.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from .errors import WeightsError
from .weights import ARTIFACTS, WeightsLocator, write_marker

TINY_UNET = dict(
    in_channels=12,
    out_channels=4,
    sample_size=32,
    block_out_channels=(32, 64, 64, 64),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=1,
    attention_head_dim=8,
    cross_attention_dim=384,
    norm_num_groups=8,
)
TINY_VAE = dict(
    block_out_channels=(16, 32, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=1,
    norm_num_groups=16,
    latent_channels=4,
    sample_size=256,
)
TINY_WHISPER = dict(
    d_model=384,
    encoder_layers=4,
    encoder_attention_heads=6,
    encoder_ffn_dim=64,
    num_mel_bins=80,
    max_source_positions=1500,
    decoder_layers=1,
    decoder_attention_heads=6,
    decoder_ffn_dim=64,
    vocab_size=8,
    max_target_positions=4,
    pad_token_id=0,
    bos_token_id=0,
    eos_token_id=0,
    decoder_start_token_id=1,
)
TINY_BISENET_BASE = 8  # channel base width (official: 64)


def _unet(folder: Path) -> None:
    from diffusers import UNet2DConditionModel

    UNet2DConditionModel(**TINY_UNET).save_pretrained(folder, safe_serialization=True)


def _vae(folder: Path) -> None:
    from diffusers import AutoencoderKL

    AutoencoderKL(**TINY_VAE).save_pretrained(folder, safe_serialization=True)


def _whisper(folder: Path) -> None:
    """transformers layout (config.json + model.safetensors with ``model.encoder.*`` keys)."""
    from safetensors.torch import save_file
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = WhisperConfig(**TINY_WHISPER)
    encoder = WhisperEncoder(config)
    folder.mkdir(parents=True, exist_ok=True)
    config.to_json_file(folder / "config.json")
    state = {f"model.encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def _face_parsing(folder: Path) -> None:
    from .face_parsing import BiSeNet

    net = BiSeNet(base=TINY_BISENET_BASE)
    # Main head: class 1 ("skin") scores the sum of the (non-negative) features, every other class 0.
    with torch.no_grad():
        net.conv_out.conv_out.weight.zero_()
        net.conv_out.conv_out.weight[1] = 1.0
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "79999_iter.pth")


def _mtcnn(folder: Path) -> None:
    found = WeightsLocator(use_public=True).find("mtcnn")
    if found is None or not found.source.startswith("package"):
        raise WeightsError(
            "the tiny set copies MTCNN from the facenet-pytorch wheel: `pip install --no-deps facenet-pytorch==2.6.0`"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in found.files.items():
        shutil.copyfile(path, folder / name)


BUILDERS = {"unet": _unet, "vae": _vae, "whisper": _whisper, "face_parsing": _face_parsing, "mtcnn": _mtcnn}


def write_tiny_weights(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny set to ``folder`` (created if needed) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        torch.manual_seed(seed)
        build(folder / ARTIFACTS[name].folder)
    write_marker(folder, "tiny", seed=seed, artifacts=sorted(BUILDERS))
    return folder
