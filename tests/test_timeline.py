"""The official frame bookkeeping (unit tests)."""

import pytest

from joygen.timeline import (
    Timeline,
    chunk_count,
    expression_frame_count,
    source_frame_index,
    whisper_frame_count,
)


def test_demo_clip_counts():
    # xinwen_5s: 80 265 samples -> HuBERT 250 -> padded 256 -> 128 rows; Whisper 250 -> 127 chunks.
    t = Timeline.from_samples(80_265)
    assert (t.expression_frames, t.whisper_frames, t.audio_chunks, t.num_frames) == (128, 250, 127, 127)
    assert t.video_seconds == pytest.approx(5.08)


def test_expression_rows_are_a_multiple_of_four():
    for n in range(400, 200_000, 977):
        assert expression_frame_count(n) % 4 == 0
        assert expression_frame_count(n) >= ((n - 80) // 320) / 2


def test_whisper_windows_are_halved_one_by_one():
    # 30 s + 1 mel frame: the second window holds one mel frame, which yields no encoder frame.
    assert whisper_frame_count(160 * 3001) == 1500
    assert whisper_frame_count(160 * 3002) == 1501
    assert whisper_frame_count(160 * 6000) == 3000
    assert chunk_count(250) == 127 and chunk_count(251) == 127 and chunk_count(0) == 2


def test_too_short_audio_gives_no_frames():
    assert Timeline.from_samples(300).num_frames == 0
    assert Timeline.from_samples(400).num_frames > 0


def test_ping_pong_repeats_turning_frames():
    assert [source_frame_index(i, 3) for i in range(10)] == [0, 1, 2, 2, 1, 0, 0, 1, 2, 2]
    assert [source_frame_index(i, 1) for i in range(4)] == [0, 0, 0, 0]
    assert [source_frame_index(i, 5) for i in range(5)] == list(range(5))  # truncation = plain order
    with pytest.raises(ValueError):
        source_frame_index(0, 0)
