"""Real3DPortrait's audio2secc VAE (the pitch-contour variant JoyGen ships): audio features -> expression.

Conditioning (25 Hz, from 50 Hz inputs by taking even frames): HuBERT features through a conv encoder,
coarse pitch through an embedding and a conv encoder, a blink embedding (always "open") and the mouth
amplitude times a learned vector, concatenated and projected to ``feat`` channels: ``g``. A flow-prior VAE
(FVAE) then samples: noise ``[B, latent, T/4]`` x temperature -> reverse residual-coupling flow conditioned
on ``g`` squeezed 4x -> decoder (transposed conv x4 + WaveNet conditioned on ``g``) -> 64 BFM expression
coefficients per 25 fps frame.

Parameter names follow the official module tree, weight-normed convolutions included (``weight_g``,
``weight_v``), so the official checkpoint loads strictly. Sizes come from the checkpoint's ``config.yaml``
(``hidden_size`` and, for joygen's tiny test models, ``joygen_sizes``), defaulting to the official ones.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError

EXP_DIM = 64  # BFM expression coefficients
PITCH_BINS = 300  # rows of the pitch embedding (1..255 used)
F0_MIN, F0_MAX, F0_BIN = 50.0, 1100.0, 256  # Hz range of the coarse pitch scale


@dataclass(frozen=True)
class Audio2SeccConfig:
    """Sizes of the network; the defaults are the official ones (11 864 064 parameters)."""

    audio_in_dim: int = 1024  # HuBERT-large width
    feat: int = 128  # conditioning width (the FVAE's gin)
    hidden: int = 256  # FVAE encoder/decoder width (config.yaml hidden_size)
    latent: int = 16
    kernel: int = 5
    enc_layers: int = 8
    dec_layers: int = 4
    stride: int = 4  # latent frames per 25 fps frame: 1/4
    glow_hidden: int = 64
    glow_kernel: int = 3
    glow_layers: int = 4  # WaveNet layers per coupling
    glow_flows: int = 4  # couplings (each followed by a channel flip)
    use_mouth_amp: bool = True
    use_eye_amp: bool = False


class WNConv1d(nn.Conv1d):
    """Conv1d with weight normalisation stored as ``weight_g`` / ``weight_v`` (torch's legacy naming)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        v = self.weight.detach()
        del self.weight
        self.weight_g = nn.Parameter(v.norm(dim=(1, 2), keepdim=True))
        self.weight_v = nn.Parameter(v.clone())

    def forward(self, x):
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(1, 2), keepdim=True))
        return self._conv_forward(x, weight, self.bias)


class WaveNet(nn.Module):
    """Gated dilated convolutions with a global condition (the official ``WN``), dilation 1."""

    def __init__(self, hidden: int, kernel: int, layers: int, cond: int):
        super().__init__()
        self.hidden = hidden
        self.in_layers = nn.ModuleList(
            WNConv1d(hidden, 2 * hidden, kernel, padding=(kernel - 1) // 2) for _ in range(layers)
        )
        self.res_skip_layers = nn.ModuleList(
            WNConv1d(hidden, 2 * hidden if i < layers - 1 else hidden, 1) for i in range(layers)
        )
        self.cond_layer = WNConv1d(cond, 2 * hidden * layers, 1)  # registered last, as in the official module

    def forward(self, x, cond):
        h = self.hidden
        cond = self.cond_layer(cond)
        out = torch.zeros_like(x)
        for i, (inp, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = inp(x) + cond[:, 2 * h * i : 2 * h * (i + 1)]
            acts = res_skip(torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:]))
            if i < len(self.in_layers) - 1:
                x = x + acts[:, :h]
                out = out + acts[:, h:]
            else:
                out = out + acts
        return out


class Coupling(nn.Module):
    """Mean-only residual coupling: the second half of the channels is shifted by a function of the first."""

    def __init__(self, channels: int, hidden: int, kernel: int, layers: int, cond: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WaveNet(hidden, kernel, layers, cond)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def reverse(self, x, cond):
        x0, x1 = x[:, : self.half], x[:, self.half :]
        shift = self.post(self.enc(self.pre(x0), cond))
        return torch.cat([x0, x1 - shift], dim=1)


class Flip(nn.Module):
    def reverse(self, x, cond):
        return torch.flip(x, [1])


class PriorFlow(nn.Module):
    def __init__(self, cfg: Audio2SeccConfig):
        super().__init__()
        flows = []
        for _ in range(cfg.glow_flows):
            flows += [Coupling(cfg.latent, cfg.glow_hidden, cfg.glow_kernel, cfg.glow_layers, cfg.feat), Flip()]
        self.flows = nn.ModuleList(flows)

    def reverse(self, z, cond):
        for flow in reversed(self.flows):
            z = flow.reverse(z, cond)
        return z


class Encoder(nn.Module):
    """Posterior encoder: used only in training, kept so the checkpoint loads strictly."""

    def __init__(self, cfg: Audio2SeccConfig):
        super().__init__()
        s = cfg.stride
        self.pre_net = nn.Sequential(nn.Conv1d(EXP_DIM, cfg.hidden, 2 * s, s, s // 2))
        self.wn = WaveNet(cfg.hidden, cfg.kernel, cfg.enc_layers, cfg.feat)
        self.out_proj = nn.Conv1d(cfg.hidden, 2 * cfg.latent, 1)


class Decoder(nn.Module):
    def __init__(self, cfg: Audio2SeccConfig):
        super().__init__()
        self.pre_net = nn.Sequential(nn.ConvTranspose1d(cfg.latent, cfg.hidden, cfg.stride, cfg.stride))
        self.wn = WaveNet(cfg.hidden, cfg.kernel, cfg.dec_layers, cfg.feat)
        self.out_proj = nn.Conv1d(cfg.hidden, EXP_DIM, 1)

    def forward(self, z, cond):
        return self.out_proj(self.wn(self.pre_net(z), cond))


class FVAE(nn.Module):
    def __init__(self, cfg: Audio2SeccConfig):
        super().__init__()
        s = cfg.stride
        self.g_pre_net = nn.Sequential(nn.Conv1d(cfg.feat, cfg.feat, 2 * s, s, s // 2))
        self.encoder = Encoder(cfg)
        self.prior_flow = PriorFlow(cfg)
        self.decoder = Decoder(cfg)


def _conv_encoder(cin: int, feat: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(cin, feat, 3, 1, 1, bias=False),
        nn.BatchNorm1d(feat),
        nn.GELU(),
        nn.Conv1d(feat, feat, 3, 1, 1, bias=False),
    )


def f0_to_coarse(f0: torch.Tensor) -> torch.Tensor:
    """Hz -> pitch bins 1..255 on a mel scale (unvoiced -> 1), as the official torch path computes them."""
    import math

    mel_min, mel_max = 1127 * math.log(1 + F0_MIN / 700), 1127 * math.log(1 + F0_MAX / 700)
    mel = 1127 * (1 + f0 / 700).log()
    voiced = mel > 0
    mel = torch.where(voiced, (mel - mel_min) * (F0_BIN - 2) / (mel_max - mel_min) + 1, mel)
    mel = mel.clamp(1, F0_BIN - 1)
    return (mel + 0.5).long()


class Audio2Secc(nn.Module):
    """The pitch-contour audio2secc model.

    ``forward(hubert [B, T, 1024], f0 [B, T], noise [B, latent, T/8], ...)`` -> ``[B, T/2, 64]``;
    T (50 Hz frames) must be a multiple of 8.
    """

    def __init__(self, cfg: Audio2SeccConfig | None = None):
        super().__init__()
        cfg = cfg or Audio2SeccConfig()
        self.cfg = cfg
        if cfg.use_mouth_amp:
            self.mouth_amp_embed = nn.Parameter(torch.zeros(cfg.feat))
        if cfg.use_eye_amp:
            self.eye_amp_embed = nn.Parameter(torch.zeros(cfg.feat))
        self.blink_embed = nn.Embedding(2, cfg.feat)
        self.mel_encoder = _conv_encoder(cfg.audio_in_dim, cfg.feat)
        self.pitch_embed = nn.Embedding(PITCH_BINS, cfg.feat)
        self.pitch_encoder = _conv_encoder(cfg.feat, cfg.feat)
        self.cond_proj = nn.Linear(cfg.feat * (3 + cfg.use_mouth_amp + cfg.use_eye_amp), cfg.feat)
        self.vae = FVAE(cfg)

    def condition(self, hubert: torch.Tensor, f0: torch.Tensor, mouth_amp: float, eye_amp: float = 1.0):
        """``g``: ``[B, feat, T/2]``. 50 -> 25 Hz keeps the even frames (nearest-neighbour at scale 0.5)."""
        hubert, f0 = hubert[:, ::2], f0[:, ::2]
        b, t = f0.shape
        parts = [
            self.mel_encoder(hubert.transpose(1, 2)),
            self.pitch_encoder(self.pitch_embed(f0_to_coarse(f0)).transpose(1, 2)),
            self.blink_embed(torch.zeros(b, t, dtype=torch.long, device=f0.device)).transpose(1, 2),
        ]
        if self.cfg.use_mouth_amp:
            parts.append((mouth_amp * self.mouth_amp_embed)[None, :, None].expand(b, -1, t))
        if self.cfg.use_eye_amp:
            parts.append((eye_amp * self.eye_amp_embed)[None, :, None].expand(b, -1, t))
        return self.cond_proj(torch.cat(parts, dim=1).transpose(1, 2)).transpose(1, 2)

    @torch.no_grad()
    def forward(self, hubert, f0, noise, temperature: float = 0.2, mouth_amp: float = 0.45):
        """Sample expressions.

        Args:
            hubert: ``[B, T, audio_in_dim]`` 50 Hz features, T a multiple of 8.
            f0: ``[B, T]`` pitch in Hz (0 = unvoiced).
            noise: ``[B, latent, T/8]`` standard normal prior noise (the official draw is
                ``torch.manual_seed(seed); torch.randn(...)`` on the CPU).
            temperature: scale of the noise.
            mouth_amp: mouth amplitude condition.

        Returns:
            ``[B, T/2, 64]`` expression coefficients at 25 fps.
        """
        g = self.condition(hubert, f0, mouth_amp)
        z = self.vae.prior_flow.reverse(noise.to(g) * temperature, self.vae.g_pre_net(g))
        return self.vae.decoder(z, g).transpose(1, 2)


def read_config(path: str | Path) -> dict:
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise WeightsError(f"audio2secc config '{path}' cannot be read: {exc}") from exc


def model_state(ckpt: dict, path) -> dict[str, torch.Tensor]:
    """The model's weights from either checkpoint layout: nested ``state_dict.model`` or flat ``model.*``."""
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise WeightsError(f"'{path}' holds no state_dict")
    if any("." in k for k in state):  # flat: "model.xxx" keys next to other children's
        model = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    else:
        model = state.get("model")
    if not model:
        raise WeightsError(f"'{path}' holds no 'model' weights (keys: {', '.join(list(state)[:5])} ...)")
    return model


def config_from(state: dict[str, torch.Tensor], hparams: dict, path) -> Audio2SeccConfig:
    """Recognise the variant from the weights, check it against config.yaml, and read the sizes."""
    if "icl" in str(hparams.get("task_cls", "")).lower():
        raise WeightsError(f"'{path}' is an in-context (ICL) audio2motion model; JoyGen uses the audio2secc VAE")
    if "pitch_embed.weight" not in state:
        kind = "the plain VAEModel variant (no pitch)" if "mel_encoder.0.weight" in state else "not an audio2secc model"
        raise WeightsError(f"'{path}' is {kind}; joygen supports the pitch-contour variant JoyGen ships")
    if hparams and hparams.get("use_pitch") is False:
        raise WeightsError(f"'{path}' has pitch weights but its config.yaml says use_pitch: false")
    audio = {"hubert": 1024, "mfcc": 13}.get(hparams.get("audio_type", "hubert"))
    if audio is None:
        raise WeightsError(f"audio_type {hparams.get('audio_type')!r} in config.yaml is not hubert")
    sizes = dict(hparams.get("joygen_sizes") or {})  # only joygen's tiny test models carry this
    known = {f.name for f in fields(Audio2SeccConfig)}
    unknown = set(sizes) - known
    if unknown:
        raise WeightsError(f"unknown joygen_sizes in config.yaml: {sorted(unknown)}")
    if "hidden_size" in hparams and "hidden" not in sizes:
        sizes["hidden"] = int(hparams["hidden_size"])
    sizes.update(
        audio_in_dim=audio,
        use_mouth_amp="mouth_amp_embed" in state,
        use_eye_amp="eye_amp_embed" in state,
    )
    for flag, key in (("use_mouth_amp_embed", "mouth_amp_embed"), ("use_eye_amp_embed", "eye_amp_embed")):
        if flag in hparams and bool(hparams[flag]) != (key in state):
            raise WeightsError(
                f"config.yaml says {flag}: {hparams[flag]} but the weights {'lack' if hparams[flag] else 'have'} {key}"
            )
    return Audio2SeccConfig(**sizes)


def load_audio2secc(folder: str | Path) -> Audio2Secc:
    """Load ``config.yaml`` + ``model_ckpt_steps_*.ckpt`` (nested or flat layout), strictly."""
    folder = Path(folder)
    ckpts = sorted(folder.glob("model_ckpt_steps_*.ckpt"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
    if not ckpts:
        raise WeightsError(f"no model_ckpt_steps_*.ckpt in '{folder}'")
    path = ckpts[-1]
    hparams = read_config(folder / "config.yaml") if (folder / "config.yaml").is_file() else {}
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"audio2secc checkpoint '{path}' cannot be read: {exc}") from exc
    state = model_state(ckpt, path)
    model = Audio2Secc(config_from(state, hparams, path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"audio2secc weights '{path}' do not fit the model its keys describe: {exc}") from exc
    return model.float().eval()
