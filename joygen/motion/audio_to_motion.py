"""Stage 1: the new voice -> 64 BFM expression coefficients per 25 fps frame.

Front end exactly as the official ``inference_audio2motion.py``:

* HuBERT-large (transformers ``HubertModel``, ``last_hidden_state``, 50 Hz, 1024-d) on **channel 0** of the
  16 kHz audio. Mixing the channels would be the better choice, but the checkpoint was trained on what the
  official code feeds it, so joygen follows it. The waveform is normalised over the whole clip, then cut
  into 20 s windows (320 080 samples, every 320 000) run independently, so memory stays bounded on long
  audio; frames are cut to ``(samples - 80) // 320`` and zero-padded to a multiple of 8.
* Pitch: Praat's autocorrelation (parselmouth; time step 20 ms, voicing threshold 0.6, 80-750 Hz) on the
  channel *mix*, padded/cut to the frame count of a 512/320 STFT, then to the HuBERT length.
* audio2secc (`joygen.audio2secc`) sampled with the official seed handling: ``torch.manual_seed(seed)``
  then the prior noise is the first CPU draw, scaled by the temperature (0.2), mouth amplitude 0.45.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import WeightsError
from ..timeline import HUBERT_HOP, SAMPLE_RATE, hubert_frame_count
from .audio2secc import Audio2Secc, load_audio2secc

HUBERT_WINDOW = 320_000  # samples between HuBERT windows (20 s)
HUBERT_RECEPTIVE = 400  # samples per HuBERT frame's receptive field
PITCH_N_FFT = 512  # the official mel/f0 front end's STFT size and hop
PITCH_HOP = 320
PITCH_SETTINGS = dict(time_step=0.02, voicing_threshold=0.6, pitch_floor=80.0, pitch_ceiling=750.0)
NORMALISE_EPS = 1e-7  # Wav2Vec2FeatureExtractor's variance guard


def normalise(wav: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole clip, in float32 (the HuBERT feature extractor's rule)."""
    x = np.asarray(wav, np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + NORMALISE_EPS)


def pitch(mono: np.ndarray, num_frames: int) -> np.ndarray:
    """f0 in Hz (0 = unvoiced) per 50 Hz frame, ``[num_frames]`` float32, from a mono 16 kHz waveform."""
    import parselmouth

    n = len(mono)
    stft_frames = 1 + (n - PITCH_N_FFT) // PITCH_HOP if n >= PITCH_N_FFT else 0
    padded = np.pad(mono, (0, (n // PITCH_HOP + 1) * PITCH_HOP - n))
    f0 = parselmouth.Sound(padded.astype(np.float64), SAMPLE_RATE).to_pitch_ac(**PITCH_SETTINGS)
    f0 = f0.selected_array["frequency"]
    if len(f0) and len(f0) < stft_frames:
        f0 = np.concatenate([f0, np.full(stft_frames - len(f0), f0[-1])])
    f0 = f0[:stft_frames]
    out = np.zeros(num_frames, np.float32)
    out[: min(num_frames, len(f0))] = f0[:num_frames]
    return out


class HubertFeatures(nn.Module):
    """HuBERT-large features as the official stage 1 computes them."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> HubertFeatures:
        from transformers import HubertModel

        try:
            model = HubertModel.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise WeightsError(f"HuBERT weights in '{folder}' cannot be loaded: {exc}") from exc
        if model.config.hidden_size != 1024:
            raise WeightsError(f"HuBERT in '{folder}' is {model.config.hidden_size} wide; audio2secc reads 1024")
        return cls(model.float().eval())

    @torch.no_grad()
    def forward(self, channel0: np.ndarray) -> torch.Tensor:
        """``[samples]`` 16 kHz (channel 0) -> ``[T, 1024]`` float32 CPU, T = `joygen.timeline.hubert_frame_count`."""
        param = next(self.model.parameters())
        x = torch.from_numpy(normalise(channel0))
        n = len(x)
        starts = list(range(0, n // HUBERT_WINDOW * HUBERT_WINDOW, HUBERT_WINDOW))
        windows = [(s, s + HUBERT_WINDOW - HUBERT_HOP + HUBERT_RECEPTIVE) for s in starts]
        if n - len(starts) * HUBERT_WINDOW >= HUBERT_RECEPTIVE:
            windows.append((len(starts) * HUBERT_WINDOW, n))
        t50 = hubert_frame_count(n, padded=False)
        # Filled window by window; rows past the last window (at most one) and the padding stay zero.
        feats = torch.zeros(hubert_frame_count(n), self.model.config.hidden_size)
        row = 0
        for s, e in windows:
            chunk = x[s:e][None].to(param.device, param.dtype)
            out = self.model(chunk).last_hidden_state[0]
            take = min(len(out), t50 - row)
            feats[row : row + take] = out[:take].float().cpu()
            row += take
        return feats


@dataclass
class Motion:
    """Stage-1 output."""

    expressions: np.ndarray  # [N, 64] float32, 25 fps
    f0: np.ndarray  # [2N] Hz
    hubert: torch.Tensor | None = None  # [2N, 1024] 50 Hz features (zero-padded), when asked for


class AudioToMotion(nn.Module):
    """HuBERT + pitch + audio2secc."""

    def __init__(self, hubert: HubertFeatures, audio2secc: Audio2Secc):
        super().__init__()
        self.hubert = hubert
        self.audio2secc = audio2secc

    @classmethod
    def from_pretrained(cls, hubert_folder: str | Path, audio2secc_folder: str | Path) -> AudioToMotion:
        return cls(HubertFeatures.from_pretrained(hubert_folder), load_audio2secc(audio2secc_folder))

    @torch.no_grad()
    def forward(
        self,
        audio: np.ndarray,
        seed: int = 0,
        temperature: float = 0.2,
        mouth_amp: float = 0.45,
        hubert_input: str = "channel0",
        keep_features: bool = False,
    ) -> Motion:
        """Expressions for a voice track.

        Args:
            audio: ``[samples]`` or ``[samples, channels]`` float32 16 kHz.
            seed, temperature, mouth_amp: the official sampling settings (0, 0.2, 0.45).
            hubert_input: "channel0" (official) or "mix" (the channel mean) for HuBERT.
            keep_features: also return the HuBERT features (``[2N, 1024]``; large for long audio).

        Returns:
            `Motion` with ``[hubert_frame_count // 2, 64]`` expressions.
        """
        audio = np.asarray(audio, np.float32)
        if hubert_input not in ("channel0", "mix"):
            raise ValueError(f"hubert_input must be 'channel0' or 'mix', not {hubert_input!r}")
        mono = audio if audio.ndim == 1 else audio.mean(axis=1, dtype=np.float32)  # librosa's mix, for f0
        first = audio if audio.ndim == 1 else audio[:, 0]  # the official HuBERT input (see module doc)
        features = self.hubert(first if hubert_input == "channel0" else mono)
        t = len(features)
        f0 = pitch(mono, t)
        # The official seeds the global RNGs and takes the first CPU draw; a CPU generator seeded the same way
        # gives the same numbers without touching global state (concurrent runs stay independent).
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(1, self.audio2secc.cfg.latent, t // 8, generator=generator)
        param = next(self.audio2secc.parameters())
        exp = self.audio2secc(
            features[None].to(param), torch.from_numpy(f0)[None].to(param), noise, temperature, mouth_amp
        )
        return Motion(exp[0].float().cpu().numpy(), f0, features if keep_features else None)
