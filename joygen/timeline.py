"""Frame bookkeeping: how many frames the edited video has and which source frame each one shows.

This reproduces the official pipeline's arithmetic (JoyGen e041bbb, see docs in README "Frame count"):

* Everything runs at 25 fps and is aligned to audio time 0: output frame i, expression row i and Whisper
  chunk i all describe t = i / 25 s.
* Stage 1 (HuBERT, 50 Hz) sees ``T50 = (samples - 80) // 320`` frames, zero-padded up to a multiple of 8;
  it emits ``T50 / 2`` expression rows at 25 fps (always a multiple of 4).
* Stage 3 (Whisper, 50 Hz) sees ``samples // 160`` log-mel frames, halved per 30 s window, and builds
  ``T_whisper // 2 + 2`` chunks.
* The edited video has ``min(expression rows, chunks)`` frames (the official ``zip`` of both lists).
* Source frames are taken in order; when the video is shorter than that, it plays forwards and backwards
  ("ping-pong": the turning frames appear twice in a row), and when it is longer it is cut.

Example: 5 s of speech = 80 265 samples -> 128 expression rows, 127 chunks -> 127 frames.
"""

from __future__ import annotations

from dataclasses import dataclass

FPS = 25  # frames per second of every stage
SAMPLE_RATE = 16_000  # Hz, the rate every audio model reads
HUBERT_HOP = 320  # samples per HuBERT frame (50 Hz)
HUBERT_EDGE = 80  # samples the HuBERT conv stack loses: receptive field 400 = 320 + 80
HUBERT_PAD_MULTIPLE = 8  # HuBERT frames are zero-padded to a multiple of this
MEL_HOP = 160  # samples per log-mel frame (100 Hz)
WHISPER_WINDOW = 3000  # log-mel frames per Whisper window (30 s)
WHISPER_STRIDE = 2  # log-mel frames per Whisper encoder frame (50 Hz)
CHUNK_EXTRA = 2  # chunks emitted past T_whisper // 2 by the official loop


def hubert_frame_count(num_samples: int, padded: bool = True) -> int:
    """HuBERT frames (50 Hz) of ``num_samples`` of 16 kHz audio: ``(samples - 80) // 320``, then (``padded``)
    zero-padded up to a multiple of 8 as stage 1 feeds them to audio2secc."""
    t50 = max(0, (num_samples - HUBERT_EDGE) // HUBERT_HOP)
    return -(-t50 // HUBERT_PAD_MULTIPLE) * HUBERT_PAD_MULTIPLE if padded else t50


def expression_frame_count(num_samples: int) -> int:
    """Rows of the stage-1 expression sequence (25 fps) for ``num_samples`` of 16 kHz audio."""
    return hubert_frame_count(num_samples) // 2


def whisper_frame_count(num_samples: int) -> int:
    """Whisper encoder frames (50 Hz) kept for ``num_samples`` of 16 kHz audio, window by window."""
    n_mel = num_samples // MEL_HOP
    return sum((min(seek + WHISPER_WINDOW, n_mel) - seek) // WHISPER_STRIDE for seek in range(0, n_mel, WHISPER_WINDOW))


def chunk_count(whisper_frames: int) -> int:
    """Audio chunks (one per 25 fps frame) the official loop builds from ``whisper_frames`` features."""
    return whisper_frames // 2 + CHUNK_EXTRA


def source_frame_index(i: int, num_source_frames: int) -> int:
    """Source frame shown at output frame ``i``: in order, then ping-pong once the source runs out.

    The official list is ``frames + reversed(frames)`` tiled, so for 3 frames: 0 1 2 2 1 0 0 1 2 ...
    """
    if num_source_frames <= 0:
        raise ValueError("a video needs at least one frame")
    period = 2 * num_source_frames
    k = i % period
    return k if k < num_source_frames else period - 1 - k


@dataclass(frozen=True)
class Timeline:
    """Frame counts of one edit, derived from the length of the voice track alone."""

    num_samples: int  # samples of the voice track at 16 kHz
    expression_frames: int  # stage-1 rows
    whisper_frames: int  # 50 Hz Whisper features
    audio_chunks: int  # stage-3 audio chunks
    num_frames: int  # frames of the edited video

    @classmethod
    def from_samples(cls, num_samples: int) -> Timeline:
        expr = expression_frame_count(num_samples)
        wf = whisper_frame_count(num_samples)
        chunks = chunk_count(wf)
        return cls(num_samples, expr, wf, chunks, min(expr, chunks))

    @property
    def audio_seconds(self) -> float:
        return self.num_samples / SAMPLE_RATE

    @property
    def video_seconds(self) -> float:
        return self.num_frames / FPS
