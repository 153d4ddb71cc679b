"""The mouth editor: SD-VAE latents and JoyGen's single-step UNet with Whisper cross-attention.

For each 256x256 face crop the UNet sees 12 latent channels at 32x32:

* 0-3   the crop with its lower half blacked out (masked in [0, 1] space, so masked pixels are -1),
* 4-7   the reference: at inference the *same* crop, unmasked,
* 8-11  the mouth depth map (upper half zeroed), or the latent of an all-black image in "no depth" mode,

and, at timestep 0, predicts the clean latent of the whole face, which the VAE decodes. Latents are the
posterior *mean* times the VAE scaling factor: deterministic, where the official code draws a sample
(unseeded) from the posterior, so its outputs vary slightly from run to run and ours do not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..boxes import FACE_SIZE
from ..errors import WeightsError

LATENT_SIZE = 32  # latent side (8x VAE downsampling)
UNET_IN_CHANNELS = 12  # [masked face, reference, depth] x 4 latent channels
CROSS_ATTENTION_DIM = 384  # Whisper-tiny state width

# config/unet.json of the official code (diffusers UNet2DConditionModel): what real JoyGen weights carry.
OFFICIAL_UNET_CONFIG = {
    "in_channels": 12,
    "out_channels": 4,
    "sample_size": 64,  # unused: the latents are 32x32
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 2,
    "attention_head_dim": 8,  # diffusers' legacy meaning: 8 heads
    "cross_attention_dim": 384,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "center_input_sample": False,
}

# stabilityai/sd-vae-ft-mse config.json
OFFICIAL_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 256,
}

# uint8 -> float32 exactly as the official float64 division: x / 255.0 then a cast to float32.
_UNIT_LUT = torch.from_numpy((np.arange(256, dtype=np.float64) / 255.0).astype(np.float32))


def load_unet(folder: str | Path, dtype: torch.dtype = torch.float32):
    """Load the editor UNet (``config.json`` + ``diffusion_pytorch_model.safetensors``) and check it is JoyGen's."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(folder), torch_dtype=dtype)
    cfg = unet.config
    if cfg.in_channels != UNET_IN_CHANNELS or cfg.out_channels != 4:
        hint = " (8 inputs: a MuseTalk UNet, which has no depth channels)" if cfg.in_channels == 8 else ""
        raise WeightsError(
            f"the UNet in '{folder}' takes {cfg.in_channels} channels and gives {cfg.out_channels}; "
            f"JoyGen's takes {UNET_IN_CHANNELS} and gives 4{hint}"
        )
    return unet.eval()


def load_vae(folder: str | Path, dtype: torch.dtype = torch.float32):
    """Load the SD VAE (``config.json`` + ``diffusion_pytorch_model.safetensors``)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(str(folder), torch_dtype=dtype).eval()


class MouthEditor(nn.Module):
    """Re-draws the lower half of 256x256 faces from audio tokens (and optionally a mouth depth map).

    Args:
        unet: diffusers ``UNet2DConditionModel`` with 12 input channels.
        vae: diffusers ``AutoencoderKL``.
    """

    def __init__(self, unet: nn.Module, vae: nn.Module):
        super().__init__()
        self.unet = unet
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)
        self._blank_latent: torch.Tensor | None = None

    @classmethod
    def from_pretrained(cls, unet_folder: str | Path, vae_folder: str | Path, dtype=torch.float32) -> MouthEditor:
        return cls(load_unet(unet_folder, dtype), load_vae(vae_folder, dtype))

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def _apply(self, fn, *args, **kwargs):
        self._blank_latent = None  # device or dtype changed
        return super()._apply(fn, *args, **kwargs)

    def to_tensor(self, images: np.ndarray | torch.Tensor, mask_lower: bool = False) -> torch.Tensor:
        """``[B, 256, 256, 3]`` uint8 RGB -> ``[B, 3, 256, 256]`` in [-1, 1], lower half -1 if ``mask_lower``."""
        images = torch.as_tensor(images).to(self.device)
        # contiguous NCHW: a channels-last view makes the convolutions take another, less exact path
        x = _UNIT_LUT.to(self.device)[images.long()].permute(0, 3, 1, 2).contiguous()
        if mask_lower:
            x[:, :, x.shape[2] // 2 :] = 0.0
        return ((x - 0.5) / 0.5).to(self.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, 256, 256]`` in [-1, 1] -> scaled posterior means ``[B, 4, 32, 32]``."""
        return self.vae.encode(x).latent_dist.mean * self.scaling_factor

    def blank_depth_latent(self, batch: int) -> torch.Tensor:
        """Latent of an all-black image: the depth condition of the "no depth" mode."""
        if self._blank_latent is None:
            black = np.zeros((1, FACE_SIZE, FACE_SIZE, 3), np.uint8)
            self._blank_latent = self.encode(self.to_tensor(black))
        return self._blank_latent.expand(batch, -1, -1, -1)

    def reference_latents(self, faces: np.ndarray) -> torch.Tensor:
        """The voice-independent part of the input: ``[B, 8, 32, 32]`` = masked face, reference (the same face).

        Args:
            faces: ``[B, 256, 256, 3]`` uint8 RGB face crops.
        """
        masked = self.encode(self.to_tensor(faces, mask_lower=True))
        return torch.cat([masked, self.encode(self.to_tensor(faces))], dim=1)

    def depth_latents(self, depths: np.ndarray | None, batch: int) -> torch.Tensor:
        """``[B, 4, 32, 32]`` latents of the mouth depth images (upper half black), or of black images if None."""
        return self.blank_depth_latent(batch) if depths is None else self.encode(self.to_tensor(depths))

    def unet_input(self, faces: np.ndarray, depths: np.ndarray | None = None) -> torch.Tensor:
        """Build the 12-channel input.

        Args:
            faces: ``[B, 256, 256, 3]`` uint8 RGB face crops.
            depths: ``[B, 256, 256, 3]`` uint8 mouth depth images (upper half already black), or None.

        Returns:
            ``[B, 12, 32, 32]``: masked face, reference (the same face), depth.
        """
        return self.assemble(self.reference_latents(faces), self.depth_latents(depths, len(faces)))

    @staticmethod
    def assemble(reference: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """``[B, 8, 32, 32]`` masked + reference latents and ``[B, 4, 32, 32]`` depth latents -> the UNet input.

        Every path to the UNet's 12 channels ends here (`unet_input`, the pipeline's cached latents).
        """
        return torch.cat([reference, depth.to(reference)], dim=1)

    def generate(self, unet_input: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """One UNet step at t = 0: ``[B, 12, 32, 32]`` + ``[B, 50, 384]`` -> predicted latents ``[B, 4, 32, 32]``."""
        timestep = torch.zeros(1, device=unet_input.device)
        return self.unet(unet_input, timestep, encoder_hidden_states=tokens.to(unet_input)).sample

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents ``[B, 4, 32, 32]`` -> ``[B, 256, 256, 3]`` uint8 RGB."""
        images = self.vae.decode(latents / self.scaling_factor).sample
        images = (images.float() / 2 + 0.5).clamp(0, 1)
        return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    @torch.no_grad()
    def forward(self, faces: np.ndarray, tokens: torch.Tensor, depths: np.ndarray | None = None) -> np.ndarray:
        """Edit a batch of faces: uint8 ``[B, 256, 256, 3]`` in, uint8 ``[B, 256, 256, 3]`` out (RGB)."""
        return self.decode(self.generate(self.unet_input(faces, depths), tokens))
