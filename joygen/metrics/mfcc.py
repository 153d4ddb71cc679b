"""MFCC features exactly as SyncNet's evaluation computes them (python_speech_features 0.6 defaults).

The official `SyncNetInstance.evaluate` calls ``python_speech_features.mfcc(audio, 16000)`` on the int16 samples
of a 16 kHz mono wav, unscaled. That package is unmaintained, so joygen computes the same numbers itself, in
float64 with numpy and scipy:

* pre-emphasis 0.97 (the first sample is kept as it is);
* frames of 400 samples every 160 (25 ms / 10 ms), ``1 + ceil((N - 400) / 160)`` of them (1 when N <= 400), the
  signal zero-padded at the end to fill the last one; rectangular window;
* power spectrum ``|rfft(frame, 512)|^2 / 512``, frame energy = its sum over the 257 bins;
* 26 triangular mel filters between 0 and 8000 Hz whose edges are the integer bins
  ``floor(513 * mel2hz(m) / 16000)`` of 28 points equally spaced on the mel scale ``2595 log10(1 + f / 700)``;
* zeros replaced by float64 eps before the log (filterbank energies and frame energy alike);
* orthonormal DCT-II, first 13 coefficients, sinusoidal lifter 22 (``1 + 11 sin(pi n / 22)``);
* coefficient 0 replaced by the log frame energy.

`tests/test_metrics_sync.py` checks this against the golden MFCCs of the official code to 1e-8.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.fft import dct

from ..timeline import SAMPLE_RATE

FRAME_LENGTH = 400  # samples (25 ms)
FRAME_STEP = 160  # samples (10 ms): 100 MFCC frames per second, 4 per video frame at 25 fps
NFFT = 512
NUM_FILTERS = 26
NUM_CEPSTRA = 13
PREEMPHASIS = 0.97
CEP_LIFTER = 22


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    num_filters: int = NUM_FILTERS, nfft: int = NFFT, sample_rate: int = SAMPLE_RATE, low_hz: float = 0.0
) -> np.ndarray:
    """``[num_filters, nfft // 2 + 1]`` triangular filters over integer FFT bins (the python_speech_features rule)."""
    high_hz = sample_rate / 2
    mels = np.linspace(_hz_to_mel(low_hz), _hz_to_mel(high_hz), num_filters + 2)
    edges = np.floor((nfft + 1) * _mel_to_hz(mels) / sample_rate)
    bank = np.zeros((num_filters, nfft // 2 + 1))
    for j in range(num_filters):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        rise = np.arange(int(lo), int(mid))
        bank[j, rise] = (rise - lo) / (mid - lo)
        fall = np.arange(int(mid), int(hi))
        bank[j, fall] = (hi - fall) / (hi - mid)
    return bank


def num_mfcc_frames(num_samples: int) -> int:
    """How many MFCC frames ``num_samples`` samples give."""
    if num_samples <= FRAME_LENGTH:
        return 1
    return 1 + math.ceil((num_samples - FRAME_LENGTH) / FRAME_STEP)


def mfcc(samples: np.ndarray) -> np.ndarray:
    """``[13, n_frames]`` float64 MFCCs of 16 kHz mono samples (int16 values, not scaled to [-1, 1])."""
    x = np.asarray(samples).astype(np.float64).ravel()
    if x.size == 0:
        raise ValueError("no audio samples")
    emphasised = np.empty_like(x)
    emphasised[0] = x[0]
    emphasised[1:] = x[1:] - PREEMPHASIS * x[:-1]
    n = num_mfcc_frames(x.size)
    padded = np.zeros((n - 1) * FRAME_STEP + FRAME_LENGTH)
    padded[: x.size] = emphasised
    starts = np.arange(n)[:, None] * FRAME_STEP
    frames = padded[starts + np.arange(FRAME_LENGTH)[None, :]]
    power = np.abs(np.fft.rfft(frames, NFFT)) ** 2 / NFFT
    eps = np.finfo(np.float64).eps
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    bands = power @ mel_filterbank().T
    bands = np.where(bands == 0, eps, bands)
    cep = dct(np.log(bands), type=2, axis=1, norm="ortho")[:, :NUM_CEPSTRA]
    cep *= 1.0 + (CEP_LIFTER / 2.0) * np.sin(np.pi * np.arange(NUM_CEPSTRA) / CEP_LIFTER)
    cep[:, 0] = np.log(energy)
    return cep.T.copy()
