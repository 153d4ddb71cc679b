"""Config: frozen sections, flat options shared by the CLI and the app, every value checked where it is set."""

import dataclasses

import pytest

from joygen.config import PipelineConfig, load_time_options, option_fields, option_help, option_names
from joygen.errors import ConfigError


def test_defaults_are_the_papers():
    c = PipelineConfig()
    assert (c.video.crf, c.editor.batch_size) == (18, 8)
    assert (c.motion.seed, c.motion.temperature, c.motion.mouth_amp) == (0, 0.2, 0.45)
    assert (c.blend.expand, c.blend.upper_boundary_ratio, c.blend.feather) == (1.2, 0.5, 0.1)
    assert c.editor.use_depth is True and c.face.landmark_box is True


def test_options_nothing_reads_are_gone():
    # 25 fps and the 256 px face are fixed by the weights (joygen.timeline.FPS, joygen.editor.FACE_SIZE)
    assert "fps" not in option_names() and "face_size" not in option_names()


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


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("crf", 99, "an integer from 0 to 51"),
        ("crf", 1.5, "an integer from 0 to 51"),
        ("batch_size", 0, "an integer from 1 to 512"),
        ("hubert_input", "both", "one of: channel0, mix"),
        ("preset", "turbo", "one of: ultrafast"),
        ("use_depth", "yes", "true or false"),
        ("temperature", -0.1, "a number from 0 to 2"),
        ("feather", float("nan"), "a number from 0 to 1"),
        ("upper_boundary_ratio", 1.5, "a number from 0 to 1"),
        ("max_seconds", 0, "a number of at least 0.1"),
        ("audio_bitrate", "192", "a bitrate in kbit/s"),
        ("thresholds", (0.6, 0.7), "three numbers between 0 and 1"),
        ("dtype", "int8", "one of: float32, float16, bfloat16"),
        ("seed", -1, "an integer from 0"),
    ],
)
def test_a_wrong_value_names_the_option_and_what_it_accepts(option, value, says):
    with pytest.raises(ConfigError, match=f"option '{option}' must be {says}") as err:
        PipelineConfig().with_options(**{option: value})
    assert err.value.option == option


def test_sections_check_their_values_when_built_directly_too():
    from joygen.config import EditorConfig

    with pytest.raises(ConfigError, match="batch_size"):
        EditorConfig(batch_size=0)


def test_numbers_are_normalised():
    c = PipelineConfig().with_options(temperature=1, crf=20.0, thresholds=[0.5, 0.6, 0.7])
    assert c.motion.temperature == 1.0 and isinstance(c.motion.temperature, float)
    assert c.video.crf == 20 and isinstance(c.video.crf, int)
    assert c.face.thresholds == (0.5, 0.6, 0.7)


def test_every_option_has_help_and_load_time_ones_are_marked():
    for name, f in option_fields().items():
        assert f.metadata["help"], name
        assert option_help(name).startswith(f.metadata["help"])
    assert set(load_time_options()) == {"min_face_size", "thresholds", "pyramid_factor", "dtype"}


def test_load_time_differences_ignore_unset_values():
    loaded = PipelineConfig().with_options(dtype="float16", min_face_size=40)
    assert loaded.with_options(seed=2).load_time_differences(loaded) == []
    assert PipelineConfig().load_time_differences(loaded) == ["min_face_size"]  # 50 set by default; dtype unset
