"""GPU checks: half precision against float32 and the parity fixtures. Skipped without CUDA.

Each check records what it measured (``record_property``, so the figures land in ``--junitxml``; and, when
``$JOYGEN_GPU_METRICS`` names a file, one JSON line per figure there: test, name, value, limit), so that a run
on a GPU host (``scripts/gpu_run.sh``) brings back numbers, not only pass/fail.

``JOYGEN_GPU_TEST_DEVICE=cpu`` runs the same checks on the CPU, to try the test code on a machine without a
GPU (slow; the CPU's half-precision kernels are not CUDA's, so its figures are only an indication). The
limits below were set from such CPU runs (torch 2.13.0+cpu, oneDNN: fp32 accumulation, one rounding per
layer, as cuDNN/cuBLAS do) and from the golden README's figures; the GPU run records the real ones.
"""

import json
import os

import numpy as np
import pytest
import torch
from helpers import decode_all, rel_err

DEVICE = os.environ.get("JOYGEN_GPU_TEST_DEVICE", "cuda")
HALF = [pytest.param(torch.float16, id="fp16"), pytest.param(torch.bfloat16, id="bf16")]

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device (none here)"),
]


@pytest.fixture
def measured(record_property, request):
    """``measured(name, value, limit)``: keep a figure for the report, then return it."""

    def record(name: str, value: float, limit: float | None = None) -> float:
        value = float(value)
        record_property(name, value)
        path = os.environ.get("JOYGEN_GPU_METRICS")
        if path:
            row = {"test": request.node.nodeid, "name": name, "value": value, "limit": limit, "device": DEVICE}
            row["within_limit"] = None if limit is None else value <= limit
            with open(path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        return value

    return record


def _short(dtype: torch.dtype) -> str:
    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]


# Whisper features against the official float32 features, relative to their max |value|. The golden README
# (audio, "Precision"): a CPU fp16 emulation of the official GPU path differed from float32 by 0.06-0.11 % of
# each state's max, growing with depth; our CPU run: fp16 1.1e-3, bf16 9.1e-3 (bf16 keeps 8 significant bits
# to fp16's 11). Limits about 2.5x.
WHISPER_LIMIT = {torch.float16: 3e-3, torch.bfloat16: 2e-2}


@pytest.mark.parametrize("dtype", HALF)
def test_whisper_features_in_half_precision(golden, demo_wav, dtype, measured):
    from joygen.editor.whisper import WhisperFeatures
    from joygen.media import load_audio

    ref = np.load(golden / "audio" / "whisper_features.npz")["features"]
    wav = load_audio(demo_wav)
    model = WhisperFeatures.from_pretrained(golden / "audio" / "whisper" / "hf")
    with torch.no_grad():
        f32 = model.to(DEVICE, torch.float32)(wav).float().cpu().numpy()
        half = model.to(DEVICE, dtype)(wav).float().cpu().numpy()
    measured("fp32_vs_fixture_rel", rel_err(f32, ref))
    measured(f"{_short(dtype)}_vs_fp32_rel", rel_err(half, f32))
    assert measured(f"{_short(dtype)}_vs_fixture_rel", rel_err(half, ref), WHISPER_LIMIT[dtype]) <= WHISPER_LIMIT[dtype]


# The editor's 12-channel UNet input (3 VAE encodes of the fixture's face and depth) against the official
# float32 input, relative to its max |value|. IEEE float32 convolutions are the fixture's arithmetic up to
# summation order (1e-4 absolute, as the CPU parity test; CPU: 7e-7). PyTorch's default on CUDA rounds the
# convolutions' inputs to TF32 (cuDNN ``allow_tf32``, 10 mantissa bits as fp16): measured on an H200 (torch
# 2.11.0+cu130), 6.3e-4 absolute = 1.8e-3 of the max; it is held to the fp16 limit. Half precision, measured
# on the CPU: fp16 3.0e-3, bf16 2.7e-2 of the max (about 6 rounding steps of each); limits about 3x that.
UNET_INPUT_LIMIT = {torch.float16: 1e-2, torch.bfloat16: 8e-2}
TF32_LIMIT = UNET_INPUT_LIMIT[torch.float16]


def _unet_input_in_ieee_float32(editor, face, depth):
    """The editor's UNet input in float32 with cuDNN's TF32 rounding off for this call only."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        return editor.to(DEVICE, torch.float32).unet_input(face, depth).float().cpu().numpy()
    finally:
        torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("dtype", HALF)
def test_editor_unet_input_in_half_precision(golden, tiny_weights, dtype, measured):
    from joygen.editor.mouth_editor import MouthEditor, load_unet, load_vae

    ref = np.load(golden / "vision" / "vae" / "unet_input_frame000.npz")
    face = np.ascontiguousarray(ref["face256_bgr"][..., ::-1])[None]
    depth = np.ascontiguousarray(ref["depth256_bgr"][..., ::-1])[None]
    editor = MouthEditor(load_unet(tiny_weights / "unet"), load_vae(golden / "vision" / "vae_tiny"))
    with torch.no_grad():
        x32 = _unet_input_in_ieee_float32(editor, face, depth)
        x32_default = editor.to(DEVICE, torch.float32).unet_input(face, depth).float().cpu().numpy()
        xh = editor.to(DEVICE, dtype).unet_input(face, depth).float().cpu().numpy()
    assert measured("fp32_vs_fixture_abs", np.abs(x32 - ref["unet_input"]).max(), 1e-4) <= 1e-4
    tf32 = measured("fp32_default_tf32_vs_fixture_rel", rel_err(x32_default, ref["unet_input"]), TF32_LIMIT)
    assert tf32 <= TF32_LIMIT
    measured(f"{_short(dtype)}_vs_fp32_rel", rel_err(xh, x32))
    limit = UNET_INPUT_LIMIT[dtype]
    assert measured(f"{_short(dtype)}_vs_fixture_rel", rel_err(xh, ref["unet_input"]), limit) <= limit


# The generator (UNet step + VAE decode) on the tiny test weights, random inputs, against float32 on the same
# device. Latents relative to their max |value|, measured on the CPU: fp16 1.9e-3, bf16 1.6e-2. Decoded faces
# in 0..255 levels: the mean |difference| is what a viewer sees (CPU: fp16 0.20, bf16 1.57 levels); the max is
# one pixel (CPU: 4 and 23 levels) and is recorded, not checked. Limits about 3x the CPU figures.
GENERATOR_LIMIT = {torch.float16: (6e-3, 0.6), torch.bfloat16: (5e-2, 5.0)}  # (latents rel, image mean abs)


@pytest.mark.parametrize("dtype", HALF)
def test_generator_in_half_precision(tiny_weights, dtype, measured):
    from joygen.editor.mouth_editor import MouthEditor

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 12, 32, 32, generator=gen)
    tokens = torch.randn(4, 50, 384, generator=gen)
    editor = MouthEditor.from_pretrained(tiny_weights / "unet", tiny_weights / "vae")
    out = {}
    with torch.no_grad():
        for dt in (torch.float32, dtype):
            editor.to(DEVICE, dt)
            latents = editor.generate(x.to(DEVICE, dt), tokens.to(DEVICE, dt))
            out[dt] = latents.float().cpu().numpy(), editor.decode(latents).astype(np.int16)
    (l32, img32), (lh, imgh) = out[torch.float32], out[dtype]
    name = _short(dtype)
    lat_limit, img_limit = GENERATOR_LIMIT[dtype]
    diff = np.abs(imgh - img32)
    measured(f"{name}_image_max_abs_levels", diff.max())
    lat = measured(f"{name}_latents_vs_fp32_rel", rel_err(lh, l32), lat_limit)
    img = measured(f"{name}_image_mean_abs_levels", diff.mean(), img_limit)
    assert lat <= lat_limit and img <= img_limit


@pytest.fixture(scope="module")
def pipeline_fp32(tiny_weights, media, tmp_path_factory):
    """The tiny-weight pipeline in float32 on the device, lossless output: the reference of the half runs."""
    from joygen.pipeline import JoyGenPipeline

    pipe = JoyGenPipeline.from_pretrained(tiny_weights, device=DEVICE, dtype=torch.float32)
    from joygen.config import PipelineConfig

    cfg = PipelineConfig().with_options(lossless=True, preset="ultrafast")  # dtype unset: each pipeline's own
    out = pipe(media["face_mp4"], media["tone_wav"], tmp_path_factory.mktemp("fp32") / "o.mp4", config=cfg)
    return cfg, decode_all(out.video)


# End to end on a 1 s clip (tiny weights, lossless output), each frame against the float32 run on the same
# device, in 0..255 levels over the whole frame (only the mouth region can differ). CPU: mean fp16 0.008,
# bf16 0.053 levels (max 19 and 92 levels at single pixels, 8e-7 and 1.5e-3 of the pixels off by more than 8).
# Limits about 5x the CPU means.
PIPELINE_LIMIT = {torch.float16: 0.05, torch.bfloat16: 0.25}


@pytest.mark.parametrize("dtype", HALF)
def test_pipeline_end_to_end_in_half_precision(tiny_weights, media, pipeline_fp32, dtype, tmp_path, measured):
    from joygen.pipeline import JoyGenPipeline

    cfg, ref = pipeline_fp32
    # fp16 is the CUDA default: ask for it by leaving the dtype out
    default = dtype == torch.float16 and DEVICE == "cuda"
    pipe = JoyGenPipeline.from_pretrained(tiny_weights, device=DEVICE, dtype=None if default else dtype)
    out = pipe(media["face_mp4"], media["tone_wav"], tmp_path / "o.mp4", config=cfg)
    assert out.report["device"].startswith(DEVICE) and out.report["dtype"] == str(dtype).removeprefix("torch.")
    assert out.num_frames == len(ref) > 0 and not out.frames_without_face
    diff = np.abs(decode_all(out.video).astype(np.int16) - ref)
    name = _short(dtype)
    measured(f"{name}_frames_max_abs_levels", diff.max())
    measured(f"{name}_pixels_off_by_more_than_8_levels", (diff > 8).mean())
    limit = PIPELINE_LIMIT[dtype]
    assert measured(f"{name}_frames_mean_abs_levels", diff.mean(), limit) <= limit
