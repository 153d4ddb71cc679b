"""Where the new voice speaks: voice activity per 25 fps frame, and the silent spans the mouth can rest in.

The detector is Silero VAD (``silero-vad`` 6.2.3, MIT): a small LSTM network trained on speech in many languages
and noise conditions, whose weights ship inside its wheel. joygen reads one file of that wheel, the ONNX
"sequence" export ``silero_vad_16k_sequence.onnx`` (1.2 MB; the weights table's ``vad`` artifact), with the
onnxruntime it already uses for DWPose: no torchaudio, no torch threads touched (importing the ``silero_vad``
package itself would set ``torch.set_num_threads(1)`` for the whole process, so it is never imported). The export
computes the same per-chunk speech probabilities as Silero's streaming model (the package says bit-exact), one
ONNX call per 512 chunks.

From the probabilities to frames:

1. Silero scores every 32 ms chunk (512 samples at 16 kHz; each chunk also sees the 64 samples before it).
2. Hysteresis, Silero's own rule: speech starts where the probability reaches `ON_THRESHOLD` (0.5) and lasts
   while it stays at or above `OFF_THRESHOLD` (0.35).
3. A frame (40 ms) is voiced when any chunk overlapping it is; bursts shorter than `MIN_SPEECH_S` are dropped
   (clicks, breaths).
4. Hangover: a voiced run is extended by `HANGOVER_S` (0.2 s) after it ends, so the short pauses between words
   do not count as silence, and by `LEAD_FRAMES` (one frame) before it starts: the detector answers about a
   chunk after the sound begins, and lips part before the sound.

`VoiceActivity.silent_spans` then gives the runs of silence long enough for ``silence_mode`` to act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .timeline import FPS, SAMPLE_RATE

CHUNK = 512  # samples per Silero decision (32 ms at 16 kHz)
CONTEXT = 64  # samples of the previous chunk that each chunk also sees
BLOCK = 512  # chunks per ONNX call (16.4 s); the LSTM state is carried from call to call
STATE = (1, 1, 128)  # the LSTM's hidden and cell state
ON_THRESHOLD = 0.5  # Silero's default speech threshold
OFF_THRESHOLD = 0.35  # Silero's default end-of-speech threshold (threshold - 0.15)
MIN_SPEECH_S = 0.08  # shorter bursts above the threshold are not speech
HANGOVER_S = 0.2  # voice stays active this long after the detector falls silent (pauses between words)
LEAD_FRAMES = 1  # frames before a detected onset that count as voiced
FRAME_SAMPLES = SAMPLE_RATE // FPS  # 640


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, last), ...]`` of the runs of True in a boolean array (inclusive frame numbers)."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


@dataclass
class VoiceActivity:
    """Voice activity of one voice track, per output frame."""

    active: np.ndarray  # [N] bool: the voice speaks in this frame (hangover included)
    probability: np.ndarray  # [N] float32: the highest Silero speech probability over the frame's 40 ms
    detector: str  # what decided, for the report

    def __len__(self) -> int:
        return len(self.active)

    def silent_spans(self, min_frames: int) -> list[tuple[int, int]]:
        """Runs of silence of at least ``min_frames`` frames, ``[(first, last), ...]``.

        A voice that never speaks is one span, whatever its length: a silent clip gets a still mouth.
        """
        if not self.active.any():
            return [(0, len(self.active) - 1)] if len(self.active) else []
        return [(a, b) for a, b in runs_of(~self.active) if b - a + 1 >= min_frames]

    def to_report(self, spans: list[tuple[int, int]]) -> dict:
        """The report's ``voice`` block: the detector, the voiced runs and the silent spans acted on."""
        return {
            "detector": self.detector,
            "frames_active": int(self.active.sum()),
            "frames": len(self.active),
            "active_runs": [list(r) for r in runs_of(self.active)],
            "silent_spans": [list(s) for s in spans],
            "rules": {
                "on_threshold": ON_THRESHOLD,
                "off_threshold": OFF_THRESHOLD,
                "min_speech_s": MIN_SPEECH_S,
                "hangover_s": HANGOVER_S,
                "lead_frames": LEAD_FRAMES,
            },
        }


class VoiceActivityDetector:
    """Silero VAD's sequence export through onnxruntime.

    Args:
        path: ``silero_vad_16k_sequence.onnx``.
        source: where the file came from (the report says it).
    """

    def __init__(self, path: str | Path, source: str = ""):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a 1.2 MB LSTM: one thread is plenty and leaves the rest to the models
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the export carries unused initialisers; onnxruntime warns about them
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.description = f"Silero VAD ({Path(path).name}, {source or 'file'})"

    def chunk_probabilities(self, wav: np.ndarray) -> np.ndarray:
        """Speech probability of every 32 ms chunk of a mono 16 kHz waveform, ``[ceil(samples / 512)]``."""
        x = np.asarray(wav, np.float32).reshape(-1)
        n = -(-len(x) // CHUNK)
        chunks = np.zeros((n, CHUNK), np.float32)
        chunks.reshape(-1)[: len(x)] = x
        windows = np.empty((n, CONTEXT + CHUNK), np.float32)
        windows[:, CONTEXT:] = chunks
        windows[0, :CONTEXT] = 0.0
        windows[1:, :CONTEXT] = chunks[:-1, -CONTEXT:]
        h, c = np.zeros(STATE, np.float32), np.zeros(STATE, np.float32)
        out = [np.zeros(0, np.float32)]
        for start in range(0, n, BLOCK):
            probs, h, c = self.session.run(None, {"input": windows[start : start + BLOCK], "h": h, "c": c})
            out.append(np.asarray(probs, np.float32).reshape(-1))
        return np.concatenate(out)

    def __call__(self, wav: np.ndarray, num_frames: int) -> VoiceActivity:
        """Voice activity of ``wav`` (mono, 16 kHz) for the ``num_frames`` frames of the edit (25 fps, from t = 0).

        Frames past the end of the sound (the timeline may hold a frame or two more) are silent.
        """
        probs = self.chunk_probabilities(wav)
        speech = _hysteresis(probs)
        # Chunks overlapping each frame: [640 t, 640 (t + 1)) samples.
        first = np.arange(num_frames) * FRAME_SAMPLES // CHUNK
        last = ((np.arange(num_frames) + 1) * FRAME_SAMPLES - 1) // CHUNK
        padded_p = np.concatenate([probs, np.zeros(2, np.float32)])
        padded_s = np.concatenate([speech, np.zeros(2, bool)])
        first, last = np.minimum(first, len(probs)), np.minimum(last, len(probs))
        probability = np.maximum(padded_p[first], padded_p[last])  # a frame spans at most two chunks
        voiced = padded_s[first] | padded_s[last]
        return VoiceActivity(_hangover(voiced), probability.astype(np.float32), self.description)


def _hysteresis(probs: np.ndarray) -> np.ndarray:
    """Silero's rule: on at `ON_THRESHOLD`, off below `OFF_THRESHOLD`."""
    out = np.zeros(len(probs), bool)
    on = False
    for k, p in enumerate(probs):
        on = p >= ON_THRESHOLD or (on and p >= OFF_THRESHOLD)
        out[k] = on
    return out


def _hangover(voiced: np.ndarray) -> np.ndarray:
    """Drop bursts shorter than `MIN_SPEECH_S`; extend the rest by `LEAD_FRAMES` before and `HANGOVER_S` after."""
    min_frames = round(MIN_SPEECH_S * FPS)
    after = round(HANGOVER_S * FPS)
    out = np.zeros(len(voiced), bool)
    for a, b in runs_of(voiced):
        if b - a + 1 >= min_frames:
            out[max(0, a - LEAD_FRAMES) : b + after + 1] = True
    return out
