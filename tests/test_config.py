"""Config: frozen sections, flat options shared by the CLI and the app."""

import dataclasses

import pytest

from joygen.config import PipelineConfig, option_names


def test_defaults_are_the_papers():
    c = PipelineConfig()
    assert (c.video.fps, c.video.crf, c.editor.batch_size, c.editor.face_size) == (25, 18, 8, 256)
    assert (c.motion.seed, c.motion.temperature, c.motion.mouth_amp) == (0, 0.2, 0.45)
    assert (c.blend.expand, c.blend.upper_boundary_ratio, c.blend.feather) == (1.2, 0.5, 0.1)
    assert c.editor.use_depth is True


def test_with_options_replaces_flat_names_and_ignores_none():
    c = PipelineConfig().with_options(seed=3, crf=23, feather=0.2, batch_size=None)
    assert (c.motion.seed, c.video.crf, c.blend.feather, c.editor.batch_size) == (3, 23, 0.2, 8)
    assert PipelineConfig().motion.seed == 0  # the original is untouched


def test_sections_are_frozen_and_names_unique():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PipelineConfig().video.crf = 1
    names = option_names()
    assert len(names) == len(set(names))
    with pytest.raises(TypeError, match="unknown option"):
        PipelineConfig().with_options(sed=1)
