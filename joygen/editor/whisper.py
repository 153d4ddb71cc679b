"""Whisper audio features exactly as JoyGen's editor consumes them.

The editor's UNet cross-attends to 50 audio tokens per video frame, built from the Whisper-tiny encoder:

1. Mono 16 kHz waveform (ffmpeg's channel mix) -> log-mel over the *whole clip*: STFT (n_fft 400, hop 160,
   periodic Hann, centred), last frame dropped, 80 Slaney mel bands, log10, floored at (clip max - 8),
   then (x + 4) / 4. The maximum is global, not per 30 s window.
2. 30 s windows of 3000 log-mel frames, the last one padded with zeros *in log-mel space* (not silence).
3. Five hidden states per encoder frame (50 Hz): the stem output (convs + positions) and the output of
   each of the 4 blocks, all *before* the final LayerNorm. Stacked: ``[T, 5, 384]``.
4. Video frame i takes encoder frames 2i-4 .. 2i+5 (clamped to the clip) -> 10 x 5 = 50 tokens,
   time-major, plus an interleaved sinusoidal positional encoding (sin on even, cos on odd dims).

transformers' `WhisperEncoder` is the model; its own outputs differ from the above in two ways (its last
hidden state is after the LayerNorm, and `WhisperFeatureExtractor` pads the waveform to 30 s), so the
log-mel is computed here and the encoder's layers are run one at a time to keep every state. Both checkpoint
layouts load: the OpenAI ``tiny.pt`` (what the JoyGen bundle ships) and the transformers ``openai/whisper-tiny``
folder.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError
from ..timeline import FPS, MEL_HOP, SAMPLE_RATE, WHISPER_STRIDE, WHISPER_WINDOW

N_FFT = 400  # samples per STFT window (25 ms)
HOP_LENGTH = MEL_HOP  # samples between log-mel frames (10 ms)
N_MELS = 80
WINDOW_FRAMES = WHISPER_WINDOW  # log-mel frames per encoder window (30 s)
FEATURE_RATE = SAMPLE_RATE // MEL_HOP // WHISPER_STRIDE  # encoder frames per second (50)
FRAME_OFFSETS = np.arange(-4, 6)  # encoder frames around 2i used by video frame i (-80 ms .. +120 ms)
NUM_STATES = 5  # stem + 4 blocks
TOKENS_PER_FRAME = len(FRAME_OFFSETS) * NUM_STATES  # 50


@functools.cache
def _mel_filters() -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32))


def log_mel_spectrogram(wav: np.ndarray, block: int = WINDOW_FRAMES) -> torch.Tensor:
    """Whole-clip log-mel of a mono 16 kHz float32 waveform: ``[80, samples // 160]`` float32.

    The STFT is centred (reflect padding at the clip's two ends) and runs ``block`` frames at a time over the
    padded signal, which gives the same frames as one call over the whole clip without its memory.
    """
    audio = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    padded = F.pad(audio[None, None], (N_FFT // 2, N_FFT // 2), mode="reflect")[0, 0]
    frames = len(audio) // HOP_LENGTH  # the last STFT frame is dropped
    window, filters = torch.hann_window(N_FFT), _mel_filters()
    log_spec = torch.empty(N_MELS, frames)
    for start in range(0, frames, block):
        stop = min(start + block, frames)
        segment = padded[start * HOP_LENGTH : (stop - 1) * HOP_LENGTH + N_FFT]
        power = torch.stft(segment, N_FFT, HOP_LENGTH, window=window, center=False, return_complex=True).abs() ** 2
        log_spec[:, start:stop] = torch.clamp(filters @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def positional_encoding(length: int = TOKENS_PER_FRAME, d_model: int = 384) -> torch.Tensor:
    """Interleaved sinusoidal encoding ``[length, d_model]`` added to every frame's audio tokens."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def chunk_indices(num_features: int, frame_indices: np.ndarray | list[int]) -> np.ndarray:
    """Encoder frames read by each video frame: ``[len(frame_indices), 10]`` int64, clamped to the clip."""
    centres = FEATURE_RATE // FPS * np.asarray(frame_indices, dtype=np.int64)[:, None]  # int(i * 50 / 25)
    return np.clip(centres + FRAME_OFFSETS[None, :], 0, num_features - 1)


def tokens_from_states(states: torch.Tensor) -> torch.Tensor:
    """``[B, 10, 5, C]`` states of each frame's 10 encoder frames -> ``[B, 50, C]`` UNet tokens.

    Time-major (token ``5 j + s`` = state ``s`` of encoder frame ``j``), plus the positional encoding.
    Every path to the UNet's audio tokens ends here (`audio_tokens`, `WhisperStream.tokens`).
    """
    tokens = states.flatten(1, 2)
    return tokens + positional_encoding(TOKENS_PER_FRAME, tokens.shape[-1]).to(tokens)


def audio_tokens(features: torch.Tensor, frame_indices: np.ndarray | list[int]) -> torch.Tensor:
    """UNet conditioning for some video frames, from a whole clip's states (`WhisperStream.tokens` streams).

    Args:
        features: ``[T, 5, C]`` Whisper states of the whole clip (50 Hz).
        frame_indices: 25 fps frame numbers.

    Returns:
        ``[len(frame_indices), 50, C]``: 10 encoder frames x 5 states, time-major, plus positional encoding.
    """
    idx = torch.from_numpy(chunk_indices(features.shape[0], frame_indices)).to(features.device)
    return tokens_from_states(features[idx])


_OPENAI_TO_HF = [  # substring replacements, applied in order, from OpenAI's whisper names to transformers'
    ("encoder.positional_embedding", "embed_positions.weight"),
    ("encoder.blocks.", "layers."),
    ("encoder.ln_post.", "layer_norm."),
    ("encoder.", ""),
    (".attn.query.", ".self_attn.q_proj."),
    (".attn.key.", ".self_attn.k_proj."),
    (".attn.value.", ".self_attn.v_proj."),
    (".attn.out.", ".self_attn.out_proj."),
    (".attn_ln.", ".self_attn_layer_norm."),
    (".mlp.0.", ".fc1."),
    (".mlp.2.", ".fc2."),
    (".mlp_ln.", ".final_layer_norm."),
]


def openai_to_hf_key(key: str) -> str:
    """Map an OpenAI ``tiny.pt`` encoder key to the transformers `WhisperEncoder` key."""
    for old, new in _OPENAI_TO_HF:
        key = key.replace(old, new)
    return key


def _encoder_config(**dims):
    from transformers import WhisperConfig

    config = WhisperConfig(**dims)  # only the encoder part is ever built
    config._attn_implementation = "sdpa"
    return config


def load_whisper_encoder(path: str | Path):
    """Build a transformers `WhisperEncoder` from either checkpoint layout, strictly.

    Args:
        path: an OpenAI checkpoint file (``tiny.pt``: ``{"dims", "model_state_dict"}``), or a folder
            holding it, or a transformers folder with ``config.json`` and ``model.safetensors``.
    """
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    path = Path(path)
    if path.is_dir() and (path / "tiny.pt").is_file():
        path = path / "tiny.pt"
    if path.is_file():
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            dims, state = ckpt["dims"], ckpt["model_state_dict"]
        except Exception as exc:  # noqa: BLE001 - any unpickling problem means "not this layout"
            raise WeightsError(f"'{path}' is not an OpenAI Whisper checkpoint ({exc})") from exc
        config = _encoder_config(
            num_mel_bins=dims["n_mels"],
            max_source_positions=dims["n_audio_ctx"],
            d_model=dims["n_audio_state"],
            encoder_attention_heads=dims["n_audio_head"],
            encoder_layers=dims["n_audio_layer"],
            encoder_ffn_dim=4 * dims["n_audio_state"],
        )
        state = {openai_to_hf_key(k): v for k, v in state.items() if k.startswith("encoder.")}
    else:
        from safetensors import safe_open

        cfg_file, weights = path / "config.json", path / "model.safetensors"
        if not (cfg_file.is_file() and weights.is_file()):
            raise WeightsError(f"'{path}' holds neither tiny.pt nor config.json + model.safetensors")
        from transformers import WhisperConfig

        config = WhisperConfig.from_json_file(cfg_file)
        config._attn_implementation = "sdpa"
        prefix = "model.encoder."
        with safe_open(weights, "pt") as f:
            state = {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}  # noqa: SIM118
    encoder = WhisperEncoder(config)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"Whisper weights in '{path}' do not fit the encoder: {exc}") from exc
    return encoder.float().eval()


class WhisperFeatures(nn.Module):
    """Whisper encoder that returns JoyGen's five pre-LayerNorm states per 20 ms frame."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    @classmethod
    def from_pretrained(cls, path: str | Path) -> WhisperFeatures:
        return cls(load_whisper_encoder(path))

    @property
    def window_frames(self) -> int:
        """Log-mel frames per encoder window (3000 for every Whisper size)."""
        return 2 * self.encoder.config.max_source_positions

    def encode_windows(self, mel: torch.Tensor) -> torch.Tensor:
        """``[W, 80, 3000]`` log-mel windows -> ``[W, 1500, 5, C]`` stacked states (stem + every block).

        The encoder's own submodules run one by one, so the states before its final LayerNorm are at hand;
        nothing is attached to the shared modules (concurrent calls stay independent).
        """
        enc = self.encoder
        x = F.gelu(enc.conv2(F.gelu(enc.conv1(mel)))).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        states = [x]
        for layer in enc.layers:
            x = layer(x, None)
            x = x[0] if isinstance(x, tuple) else x
            states.append(x)
        return torch.stack(states, dim=2)

    def stream(self, wav: np.ndarray) -> WhisperStream:
        """Features of a clip, encoded window by window as frames ask for them (bounded memory)."""
        return WhisperStream(self, wav)

    @torch.no_grad()
    def forward(self, wav: np.ndarray) -> torch.Tensor:
        """Features of a whole clip.

        Args:
            wav: mono 16 kHz float32 waveform, at least 400 samples.

        Returns:
            ``[T, 5, C]`` float32 on the CPU, T = sum over windows of (frames in window) // 2.
        """
        stream = self.stream(wav)
        return stream.states(np.arange(stream.num_frames))


class WhisperStream:
    """Whisper states of one clip, computed one 30 s window at a time and kept for a few windows.

    The log-mel is computed for the whole clip first (its normalisation uses the clip's maximum); each window
    is zero-padded in log-mel space to 3000 frames, encoded, and keeps ``frames_in_window // 2`` states.
    """

    KEEP_WINDOWS = 3  # windows held at once (frames near a boundary read two)

    def __init__(self, model: WhisperFeatures, wav: np.ndarray):
        self.model = model
        self.mel = log_mel_spectrogram(wav)  # always float32 on the CPU, as the official
        self.win = model.window_frames
        n_mel = self.mel.shape[1]
        self.keep = [(min(seek + self.win, n_mel) - seek) // 2 for seek in range(0, n_mel, self.win)]
        self.num_frames = sum(self.keep)  # encoder frames, 50 Hz
        self._windows: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def _window(self, w: int) -> torch.Tensor:
        if w not in self._windows:
            param = next(self.model.encoder.parameters())
            segment = self.mel[:, w * self.win : (w + 1) * self.win]
            segment = F.pad(segment, (0, self.win - segment.shape[1]))[None].to(param.device, param.dtype)
            self._windows[w] = self.model.encode_windows(segment)[0, : self.keep[w]].float().cpu()
            while len(self._windows) > self.KEEP_WINDOWS:
                self._windows.pop(min(self._windows))
        return self._windows[w]

    def states(self, frames: np.ndarray) -> torch.Tensor:
        """``[len(frames), 5, C]`` states of encoder frames (50 Hz indices)."""
        half = self.win // 2
        frames = np.asarray(frames)
        out = torch.empty(len(frames), NUM_STATES, self.model.encoder.config.d_model)
        for w in np.unique(frames // half):
            sel = np.flatnonzero(frames // half == w)
            out[sel] = self._window(int(w))[torch.from_numpy(frames[sel] % half)]
        return out

    def window_states(self, w: int) -> torch.Tensor:
        """``[frames_in_window // 2, 5, C]`` states of window ``w`` (for writing all of a clip's features)."""
        return self._window(w)

    def tokens(self, frame_indices) -> torch.Tensor:
        """UNet conditioning ``[B, 50, C]`` for 25 fps video frames (see `audio_tokens`)."""
        idx = chunk_indices(self.num_frames, frame_indices)
        return tokens_from_states(self.states(idx.reshape(-1)).view(*idx.shape, NUM_STATES, -1))
