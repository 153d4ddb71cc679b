"""Training data preparation and the editor's training loop (tiny weights, CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import GOLDEN, ROOT, ffmpeg, run_cli

from joygen.tools.train import EditorDataset, TrainConfig, editor_inputs, loss_terms, random_translate

TINY_UNET = {
    "in_channels": 12, "out_channels": 4, "sample_size": 32, "block_out_channels": [16, 32, 32, 32],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "layers_per_block": 1, "attention_head_dim": 8, "cross_attention_dim": 384, "norm_num_groups": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def weights(tiny_weights, tmp_path_factory):
    """The tiny set with the fixtures' mini-BFM as the face model."""
    folder = tmp_path_factory.mktemp("train") / "weights"
    shutil.copytree(tiny_weights, folder)
    if (GOLDEN / "vision" / "mini_bfm").is_dir():
        shutil.rmtree(folder / "bfm")
        shutil.copytree(GOLDEN / "vision" / "mini_bfm", folder / "bfm")
    return folder


@pytest.fixture(scope="module")
def prepared(weights, demo_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "data"
    run = run_cli("prepare", str(demo_video), str(out), "--weights", str(weights), "--device", "cpu")
    assert run.returncode == 0, run.stderr[-2000:]
    return out


def _config(prepared, weights, output, **extra) -> TrainConfig:
    return TrainConfig(data=str(prepared), output=str(output), weights=str(weights), unet_init="scratch",
                       unet_config=TINY_UNET, num_workers=0, **extra)  # fmt: skip


@pytest.mark.slow
def test_prepare_keeps_single_face_frames_and_says_why_others_went(prepared, demo_video):
    (video,) = [p for p in prepared.iterdir() if p.is_dir()]
    meta = json.loads((video / "meta.json").read_text())
    assert meta["frames"] == 127 and len(meta["kept"]) == 127 and meta["spans"] == [[0, 127]]
    assert len(list((video / "faces").glob("*.jpg"))) == len(list((video / "depth").glob("*.png"))) == 127
    lm = np.load(video / "landmarks.npy")
    assert lm.shape == (127, 468, 2) and np.isfinite(lm).all()
    assert meta["whisper"]["shape"] == [250, 5, 384]
    summary = json.loads((prepared / "summary.json").read_text())
    assert summary["frames_kept"] == 127 and summary["videos_dropped"] == {}
    again = run_cli("prepare", str(demo_video), str(prepared), "--device", "cpu")  # resumable per video
    assert "already prepared, skipped" in again.stdout


@pytest.mark.slow
def test_prepare_drops_frames_without_a_face_and_says_so(weights, media, tmp_path):
    from joygen.tools.prepare import PrepareConfig, prepare

    clip = tmp_path / "clip.mp4"  # 1 s of face, 0.4 s of an empty room, 1 s of face
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=512x512:r=25:d=0.4", "-i", str(media["face_mp4"]), "-f", "lavfi",
           "-i", "sine=frequency=200:sample_rate=16000:duration=2.4", "-filter_complex",
           "[1:v][0:v][1:v]concat=n=3:v=1:a=0[v]", "-map", "[v]", "-map", "2:a", "-shortest", str(clip))  # fmt: skip
    summary = prepare(clip, tmp_path / "out", weights, "cpu", PrepareConfig(min_span=7), log=lambda _m: None)
    assert summary["frames_dropped"].get("no face") == 10
    (meta_file,) = (tmp_path / "out").glob("*/meta.json")
    assert json.loads(meta_file.read_text())["spans"] == [[0, 25], [35, 60]]


def test_displacement_stays_within_bounds():
    image = np.arange(256 * 256, dtype=np.uint32).reshape(256, 256)
    seen = set()
    for seed in range(300):
        shifted, (dx, dy) = random_translate(image, 5, np.random.default_rng(seed))
        assert -5 <= dx <= 5 and -5 <= dy <= 5
        seen.add((dx, dy))
        inner = shifted[10:-10, 10:-10]
        np.testing.assert_array_equal(inner, image[10 - dy : 246 - dy, 10 - dx : 246 - dx])
        if dx > 0:
            assert (shifted[:, :dx] == 0).all()  # zero fill, no wrap-around
    assert len(seen) > 60  # the whole range is used


def test_references_are_at_least_five_frames_away(prepared, weights, tmp_path):
    ds = EditorDataset(prepared, _config(prepared, weights, tmp_path))
    torch.manual_seed(0)
    gaps = [abs(int(s["frame"]) - int(s["reference_frame"])) for s in (ds[k % len(ds)] for k in range(0, 400, 3))]
    assert min(gaps) >= 5 and max(gaps) > 20


def test_depth_is_fed_half_of_the_time_and_really_reaches_the_unet(prepared, weights, tmp_path):
    from joygen.editor.mouth_editor import MouthEditor, load_vae
    from joygen.tools.train import build_unet

    cfg = _config(prepared, weights, tmp_path)
    ds = EditorDataset(prepared, cfg)
    torch.manual_seed(1)
    fed = [bool(ds[k]["has_depth"]) for k in range(len(ds))]
    assert 0.35 < np.mean(fed) < 0.65  # the paper's 50 %: the released loader's depth was always black
    with_depth, without = (
        EditorDataset(prepared, cfg, force_depth=True),
        EditorDataset(prepared, cfg, force_depth=False),
    )
    twins = []
    for data in (with_depth, without):
        torch.manual_seed(7)
        twins.append(data[40])
    a, b = twins
    assert torch.equal(a["target"], b["target"]) and torch.equal(a["reference"], b["reference"])
    assert a["depth"].sum() > 0 and b["depth"].sum() == 0 and max(map(abs, a["shift"].tolist())) <= 5
    editor = MouthEditor(build_unet(cfg), load_vae(weights / "vae"))
    inputs = [editor_inputs(editor, {k: v[None] for k, v in s.items()}, sample=False)[0] for s in twins]
    assert torch.equal(inputs[0][:, :8], inputs[1][:, :8])  # masked target and reference: the same
    assert (inputs[0][:, 8:] - inputs[1][:, 8:]).abs().max() > 1e-3  # the depth latent differs


def test_loss_weights_are_applied_as_configured(prepared, weights, tmp_path):
    from joygen.editor.mouth_editor import MouthEditor, load_vae
    from joygen.tools.train import build_unet

    cfg = _config(prepared, weights, tmp_path)
    assert (TrainConfig().lambda_latent, TrainConfig().lambda_pixel) == (2.0, 1.0)  # the paper's
    editor = MouthEditor(build_unet(cfg), load_vae(weights / "vae"))
    ds = EditorDataset(prepared, cfg)
    batch = {k: torch.stack([ds[0][k], ds[9][k]]) for k in ds[0]}
    x, tokens, target_x, target_latent = editor_inputs(editor, batch, sample=False)
    predicted = torch.randn_like(target_latent)
    for lat, pix in ((2.0, 1.0), (1.0, 2.0), (0.0, 1.0)):
        t = loss_terms(
            editor,
            predicted,
            target_x,
            target_latent,
            _config(prepared, weights, tmp_path, lambda_latent=lat, lambda_pixel=pix),
        )
        assert torch.allclose(t["loss"], lat * t["latent_l1"] + pix * t["pixel_l1"])
        assert t["latent_l1"] > 0 and t["pixel_l1"] > 0


def test_config_file_checks_names_and_resolves_paths(tmp_path):
    from joygen.errors import InputError

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": "d", "output": "o", "lr": 1e-4}))
    cfg = TrainConfig.load(tmp_path / "c.yaml")
    assert cfg.data == str(tmp_path / "d") and cfg.lr == 1e-4 and cfg.optimizer == "adam"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"learning_rate": 1}))
    with pytest.raises(InputError, match="learning_rate"):
        TrainConfig.load(tmp_path / "bad.yaml")


def _write_config(path: Path, cfg: TrainConfig) -> Path:
    import dataclasses

    raw = dataclasses.asdict(cfg)
    raw["crop_scale"] = list(raw["crop_scale"])
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_tiny_run_halves_the_loss_and_its_checkpoint_edits_a_clip(prepared, weights, media, tmp_path):
    from joygen.pipeline import JoyGenPipeline
    from joygen.tools.train import train

    cfg = _config(prepared, weights, tmp_path / "run", steps=200, batch_size=2, lr=1e-3, latent_sample=False,
                  log_every=10, save_every=100, validate_every=200,
                  validation={"video": str(media["face_noaudio_mp4"]), "audio": str(media["tone_wav"])})  # fmt: skip
    result = train(cfg, log=lambda _m: None)
    assert result["step"] == 200
    evals = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    evals = {e["step"]: e["eval_loss"] for e in evals if "eval_loss" in e}
    assert evals[200] <= 0.5 * evals[0], evals  # the training loss falls by at least half
    checkpoint = tmp_path / "run" / "checkpoint-0000200" / "unet"
    assert (checkpoint / "config.json").is_file() and (checkpoint / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "run" / "val" / "step_0000200.png").is_file()  # image | reference | depth | prediction
    assert (tmp_path / "run" / "val" / "step_0000200.mp4").is_file()  # the held-out clip, edited
    assert len(list((tmp_path / "run" / "val" / "step_0000200" / "generated256").glob("*.png"))) > 0
    pipe = JoyGenPipeline.from_pretrained(weights, unet=checkpoint)
    out = pipe(media["face_mp4"], media["tone_wav"], tmp_path / "edited.mp4")
    assert out.num_frames > 0 and not out.frames_without_face


def _accelerate_train(launch_args: list[str], config: Path, threads: int) -> subprocess.CompletedProcess:
    """``accelerate launch LAUNCH_ARGS -m joygen train CONFIG`` in a fresh process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "accelerate.commands.launch", *launch_args, "-m", "joygen", "train", str(config)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_accelerate_launch_runs_two_processes_and_resumes(prepared, weights, tmp_path):
    cfg = _config(prepared, weights, tmp_path / "run", steps=20, batch_size=2, lr=1e-3, log_every=5, save_every=10,
                  validate_every=0)  # fmt: skip
    run = _accelerate_train(["--multi_gpu", "--num_processes", "2", "--main_process_port", "0"],
                            _write_config(tmp_path / "c.yaml", cfg), threads=1)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 process(es)" in run.stdout + run.stderr and "MULTI_CPU" in run.stdout + run.stderr
    assert (tmp_path / "run" / "checkpoint-0000020" / "unet" / "config.json").is_file()
    cfg_more = _write_config(tmp_path / "c2.yaml", _config(prepared, weights, tmp_path / "run", steps=25, batch_size=2,
                                                             lr=1e-3, log_every=5, save_every=5, validate_every=0))  # fmt: skip
    again = run_cli("train", str(cfg_more), timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from checkpoint-0000020" in again.stdout + again.stderr
    assert (tmp_path / "run" / "checkpoint-0000025").is_dir()


@pytest.mark.slow
def test_plain_accelerate_launch_runs_twenty_steps(prepared, weights, tmp_path):
    """The literal `accelerate launch --num_processes 2`; without GPUs accelerate starts one process for it."""
    cfg = _config(prepared, weights, tmp_path / "run", steps=20, batch_size=2, lr=1e-3, log_every=5, save_every=20,
                  validate_every=0)  # fmt: skip
    run = _accelerate_train(["--num_processes", "2"], _write_config(tmp_path / "c.yaml", cfg), threads=2)
    assert run.returncode == 0, run.stderr[-3000:]
    processes = 2 if torch.cuda.device_count() > 1 else 1  # accelerate goes multi-process only with several GPUs
    assert f"{processes} process(es)" in run.stdout + run.stderr
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert max(steps) == 20
    assert (tmp_path / "run" / "checkpoint-0000020" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
