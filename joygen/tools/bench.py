"""``python -m joygen bench``: frames per second of every stage and end to end, with peak memory.

Speed does not depend on the weights' values, so the models are built at their real sizes with random
weights (``--size real``; ``--size tiny`` uses the tiny test set). Two pieces cannot be built at their real
size without their real files and are stand-ins, which the printed table says: DWPose (a tiny network with
its interface; the real RTMPose-l costs more) and the Basel Face Model (a procedural face mesh of the real
size, 35 721 vertices and 70 688 triangles). MTCNN runs with its real weights.

The clip is the bundled example (a 900x900, 25 fps talking face and its speech) looped to ``--frames``, or
``--video``/``--audio``. One short warm-up run, then the measured run (nothing cached), then a run of the
same video with another voice of the same length (the per-video cache at work), then the app's "Check the face"
(`joygen.face_check.check_face` on the clip's first frame with a face, best of a few), then the generator alone
(UNet + VAE decode on random inputs). ``--only generator`` builds the UNet and the VAE alone and measures only
the generator (seconds, where the whole pipeline at real size takes a minute to build).

On CUDA each measured phase also records the peak GPU memory (``torch.cuda.max_memory_allocated`` and
``max_memory_reserved``) and the GPU's utilisation, sampled every 100 ms through NVML (``pynvml``, from the
``nvidia-ml-py`` package) or, without it, ``nvidia-smi --query-gpu``. With ``--json`` the file is rewritten after
every phase (``"complete": false`` until the end), so a run stopped by a time limit still leaves its figures.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from ..media import ffmpeg_path, run_ffmpeg
from ..pipeline import JoyGenPipeline
from ..report import versions
from ..timeline import FPS, SAMPLE_RATE
from ..weights.locator import PROJECT_ROOT, WeightSet
from .instruments import GpuSampler, PeakRSS, device_info, peak_gpu_memory, reset_peak_memory, sync_device

EXAMPLE_VIDEO = PROJECT_ROOT / "assets" / "examples" / "example_5s.mp4"
EXAMPLE_AUDIO = PROJECT_ROOT / "assets" / "examples" / "xinwen_5s.mp3"
WARMUP_FRAMES = 16
REAL_BFM_GRID = (189, 189)  # a procedural face mesh of the BFM front's size


def real_size_editor():
    """The editor UNet and the SD VAE at their real sizes, random weights (float32, on the CPU)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from ..editor.mouth_editor import OFFICIAL_UNET_CONFIG, OFFICIAL_VAE_CONFIG, MouthEditor

    torch.manual_seed(0)
    return MouthEditor(UNet2DConditionModel(**OFFICIAL_UNET_CONFIG).eval(), AutoencoderKL(**OFFICIAL_VAE_CONFIG).eval())


def real_size_pipeline(work: Path, device: str, dtype: torch.dtype | None) -> JoyGenPipeline:
    """Every model at its real size with random weights (see the module docstring for the two stand-ins)."""
    from transformers import HubertConfig, HubertModel, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from ..editor.face_parsing import BiSeNet, FaceParser
    from ..editor.whisper import WhisperFeatures
    from ..face3d.bfm import FaceModel
    from ..face3d.detection import FaceDetector
    from ..face3d.dwpose import DWPose, write_tiny_dwpose
    from ..face3d.mouth_depth import MouthDepth
    from ..face3d.mtcnn import MTCNN
    from ..face3d.reconstruction import ReconNet
    from ..motion.audio2secc import Audio2Secc
    from ..motion.audio_to_motion import AudioToMotion, HubertFeatures
    from ..weights.locator import WeightsLocator
    from ..weights.tiny import _bfm

    torch.manual_seed(0)
    mtcnn = WeightsLocator(use_public=True).find("mtcnn")
    if mtcnn is None:
        raise RuntimeError("the benchmark needs the MTCNN weights: pip install --no-deps facenet-pytorch")
    parser = BiSeNet(base=64)
    with torch.no_grad():  # every pixel "skin", so the paste-back does its full work
        parser.conv_out.conv_out.weight.zero_()
        parser.conv_out.conv_out.weight[1] = 1.0
    recon = ReconNet(base=64)
    with torch.no_grad():  # near-zero heads: frontal mean faces, so the renderer draws whole faces
        for head in recon.final_layers:
            head.weight.mul_(1e-3)
            head.bias.zero_()
    write_tiny_dwpose(work / "dwpose.onnx")
    _bfm(work / "bfm", REAL_BFM_GRID)
    hubert = HubertModel(  # facebook/hubert-large-ls960-ft's shapes
        HubertConfig(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
    )
    whisper = WhisperEncoder(
        WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536)
    )
    editor = real_size_editor()
    pipe = JoyGenPipeline(
        editor=editor,
        whisper=WhisperFeatures(whisper.eval()),
        face_detector=FaceDetector(MTCNN.from_pretrained(mtcnn.folder), DWPose(work / "dwpose.onnx", device)),
        face_parser=FaceParser(parser.eval()),
        weights=WeightSet({}),
        motion=AudioToMotion(HubertFeatures(hubert.eval()), Audio2Secc().eval()),
        depth=MouthDepth(recon.eval(), FaceModel.from_folder(work / "bfm")),
    )
    return pipe.to(device, dtype)


def prepare_clip(work: Path, frames: int, video: str | None, audio: str | None) -> tuple[Path, Path, Path]:
    """A clip of ``frames`` frames, its voice, and a second voice of the same length (the first reversed)."""
    video = Path(video or EXAMPLE_VIDEO)
    audio = Path(audio or EXAMPLE_AUDIO)
    seconds = frames / FPS
    clip, voice, other = work / "clip.mp4", work / "voice.wav", work / "voice_reversed.wav"
    run_ffmpeg(
        [
            "-stream_loop",
            "-1",
            "-i",
            ffmpeg_path(video),
            "-frames:v",
            str(frames),
            "-an",
            *"-c:v libx264 -preset veryfast -crf 16".split(),
            "-y",
            ffmpeg_path(clip),
        ],
        what="preparing the clip",
    )
    run_ffmpeg(
        [
            "-stream_loop",
            "-1",
            "-i",
            ffmpeg_path(audio),
            "-t",
            f"{seconds:.3f}",
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-y",
            ffmpeg_path(voice),
        ],
        what="preparing the voice",
    )
    run_ffmpeg(
        ["-i", ffmpeg_path(voice), "-af", "areverse", "-y", ffmpeg_path(other)], what="preparing the second voice"
    )
    return clip, voice, other


def generator_stats(editor, batch: int, repeats: int) -> dict:
    """UNet + VAE decode alone, on random latents and audio tokens of one batch, repeated."""
    dev = editor.device
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 12, 32, 32, generator=gen).to(dev, editor.dtype)
    tokens = torch.randn(batch, 50, 384, generator=gen).to(dev, editor.dtype)
    with torch.inference_mode():
        editor.decode(editor.generate(x, tokens))  # warm-up
        sync_device(dev)
        reset_peak_memory(dev)
        with GpuSampler(dev) as util:
            start = time.perf_counter()
            for _ in range(repeats):
                editor.decode(editor.generate(x, tokens))
            sync_device(dev)
            seconds = time.perf_counter() - start
    return {
        "fps": round(batch * repeats / seconds, 1),
        "dtype": str(editor.dtype).removeprefix("torch."),
        "batch": batch,
        "repeats": repeats,
        "seconds": round(seconds, 3),
        **peak_gpu_memory(dev),
        "gpu_util": util.summary(),
    }


def _default_dtype(dev: torch.device, dtype: torch.dtype | None) -> torch.dtype:
    return dtype or (torch.float16 if dev.type == "cuda" else torch.float32)


def run(
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    frames: int = 250,
    size: str = "real",
    batch_size: int | None = None,
    video: str | None = None,
    audio: str | None = None,
    log=print,
    only: str = "all",
    save=None,
) -> dict:
    """Run the benchmark and return its results (see the module docstring).

    ``only="generator"`` measures the generator alone. ``save``, if given, is called with the results so far
    after every phase.
    """
    dev = torch.device(device)
    batch = batch_size or (32 if dev.type == "cuda" else 8)
    dtype = _default_dtype(dev, dtype)
    info = device_info(dev)
    result = {
        "complete": False,
        "phase": "building the models",
        "error": None,
        "only": only,
        "device": info["name"],
        "device_info": info,
        "dtype": str(dtype).removeprefix("torch."),
        "size": size,
        "stand_ins": []
        if size == "tiny" or only == "generator"
        else ["DWPose (tiny network, real RTMPose-l costs more)", "BFM (procedural mesh of the real size)"],
        "clip": None,
        "batch_size": batch,
        "model_load_seconds": None,
        "runs": {},
        "face_check": None,
        "generator": None,
        "generator_fps": None,
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions(),
    }

    def phase(name: str) -> None:
        result["phase"] = name
        log(f"{name} ...")
        if save is not None:
            save(result)

    try:
        _measure(result, phase, dev, dtype, frames, size, batch, video, audio, only)
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        if save is not None:
            save(result)
        raise
    result["generator_fps"] = result["generator"]["fps"]
    result["complete"], result["phase"] = True, "done"
    if save is not None:
        save(result)
    return result


def _measure(result, phase, dev, dtype, frames, size, batch, video, audio, only) -> None:
    device = str(dev)
    repeats = 3 if dev.type == "cpu" else 20
    with tempfile.TemporaryDirectory(prefix="joygen-bench-") as tmp:
        work = Path(tmp)
        phase(f"building the {size}-size models on {device}")
        start = time.perf_counter()
        if only == "generator":
            if size == "tiny":
                from ..editor.mouth_editor import MouthEditor
                from ..weights.tiny import write_tiny_weights

                weights = write_tiny_weights(work / "weights")
                editor = MouthEditor.from_pretrained(weights / "unet", weights / "vae")
            else:
                editor = real_size_editor()
            editor.to(dev, dtype)
            sync_device(dev)
            result["model_load_seconds"] = round(time.perf_counter() - start, 1)
            phase("measuring: generator alone")
            result["generator"] = generator_stats(editor, batch, repeats)
        else:
            if size == "tiny":
                from ..weights.tiny import write_tiny_weights

                pipe = JoyGenPipeline.from_pretrained(write_tiny_weights(work / "weights"), device=device, dtype=dtype)
            else:
                pipe = real_size_pipeline(work, device, dtype)
            sync_device(dev)
            result["model_load_seconds"] = round(time.perf_counter() - start, 1)
            phase(f"preparing a {frames}-frame clip")
            clip, voice, other = prepare_clip(work, frames, video, audio)
            (work / "warmup").mkdir()
            warm_clip, warm_voice, _ = prepare_clip(work / "warmup", WARMUP_FRAMES, video, audio)
            width, height = probe_size(clip)
            result["clip"] = {"frames": frames, "width": width, "height": height, "fps": FPS}
            config = pipe.config.with_options(
                batch_size=batch, cache_dir=str(work / "cache"), preset="veryfast", sync_score=False
            )  # the edit only: lip-sync scoring is the eval's cost, not the editor's
            phase("warming up")
            start = time.perf_counter()
            pipe(warm_clip, warm_voice, work / "warmup.mp4", config=config.with_options(cache=False))
            result["warmup_seconds"] = round(time.perf_counter() - start, 1)
            for name, voice_file in (("first run", voice), ("cached video, new voice", other)):
                phase(f"measuring: {name}")
                reset_peak_memory(dev)
                with PeakRSS() as rss, GpuSampler(dev) as util:
                    start = time.perf_counter()
                    out = pipe(clip, voice_file, work / f"{len(result['runs'])}.mp4", config=config)
                    sync_device(dev)
                    seconds = time.perf_counter() - start
                staged = sum(out.timings.values())
                result["runs"][name] = {
                    "frames": out.num_frames,
                    "seconds": round(seconds, 3),
                    "fps": round(out.num_frames / seconds, 2),
                    "stages": {
                        k: {
                            "seconds": v,
                            "fps": round(out.num_frames / v, 1) if v else None,
                            "share": round(v / seconds, 3),
                        }
                        for k, v in out.timings.items()
                    },
                    "outside_stages_seconds": round(seconds - staged, 3),  # set-up and waits not charged to a stage
                    "peak_host_gib": round(rss.peak / 2**30, 3),
                    **peak_gpu_memory(dev),
                    "gpu_util": util.summary(),
                }
            phase("measuring: the face check")
            result["face_check"] = face_check_stats(pipe, clip, repeats)
            phase("measuring: generator alone")
            result["generator"] = generator_stats(pipe.editor, batch, repeats)
            phase("measuring: the rasteriser")
            result["rasterizer"] = rasterizer_stats(pipe.depth.face_model, dev, batch)


def rasterizer_stats(face_model, dev: torch.device, batch: int, repeats: int = 5) -> dict:
    """The mouth-depth rasteriser alone on ``batch`` frames of the face mesh (best of ``repeats``), per frame."""
    from ..face3d.reconstruction import COEFF_SLICES
    from ..face3d.render import rasterize

    coeffs = torch.zeros(batch, 257, device=face_model.mean_shape.device)
    coeffs[:, COEFF_SLICES["trans"].start] = torch.linspace(
        -0.05, 0.05, batch, device=coeffs.device
    )  # frames differ a little
    with torch.no_grad():
        vertices = face_model.camera_vertices(coeffs)
        rasterize(vertices, face_model.triangles)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            sync_device(dev)
            start = time.perf_counter()
            rasterize(vertices, face_model.triangles)
            sync_device(dev)
            best = min(best, time.perf_counter() - start)
    return {
        "vertices": int(vertices.shape[1]),
        "triangles": int(face_model.triangles.shape[0]),
        "batch": batch,
        "ms_per_frame": round(1000 * best / batch, 2),
    }


def face_check_stats(pipe: JoyGenPipeline, clip: Path, repeats: int) -> dict:
    """Seconds of `joygen.face_check.check_face` on the clip (first frame with a face): best and first of
    ``repeats``."""
    from ..face_check import check_face

    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        check = check_face(pipe, clip)
        seconds.append(time.perf_counter() - start)
    return {"seconds": round(min(seconds), 3), "first_seconds": round(seconds[0], 3), "frame": check.frame_index}


def probe_size(path: Path) -> tuple[int, int]:
    from ..media import probe

    v = probe(path).video
    return v.width, v.height


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _util(u: dict | None) -> str:
    return f", GPU busy {u['mean_util_pct']:.0f}% mean" if u and u["mean_util_pct"] is not None else ""


def table(r: dict) -> str:
    """The results as a plain-text table."""
    lines = [
        f"device: {r['device']} | dtype {r['dtype']} | models: {r['size']} size, random weights | "
        f"joygen {r['versions']['joygen']} ({r['commit']}) | torch {r['versions']['torch']} | {r['date']}",
    ]
    if r["clip"]:
        c = r["clip"]
        lines.append(f"clip: {c['frames']} frames, {c['width']}x{c['height']} at 25 fps | batch {r['batch_size']}")
    if r["stand_ins"]:
        lines.append("stand-ins: " + "; ".join(r["stand_ins"]))
    if "first run" in r["runs"]:
        lines += ["", f"{'stage (first run)':34s}{'seconds':>10s}{'frames/s':>12s}"]
        stages = r["runs"]["first run"]["stages"]
        for stage, v in sorted(stages.items(), key=lambda kv: -kv[1]["seconds"]):
            lines.append(f"{stage:34s}{v['seconds']:10.2f}{(v['fps'] or float('nan')):12.1f}")
        lines.append("")
    for name, run_ in r["runs"].items():
        gpu = f", peak GPU {run_['peak_gpu_gib']:.2f} GiB" if run_["peak_gpu_gib"] is not None else ""
        lines.append(
            f"end to end, {name + ':':28s}{run_['seconds']:8.2f} s {run_['fps']:10.2f} frames/s "
            f"(peak host {run_['peak_host_gib']:.2f} GiB{gpu}{_util(run_['gpu_util'])})"
        )
    if r.get("face_check"):
        f = r["face_check"]
        lines.append(
            f"face check (one frame, as the app's button):  {f['seconds']:.2f} s (first {f['first_seconds']:.2f} s)"
        )
    g = r["generator"]
    if g:
        gpu = f", peak GPU {g['peak_gpu_gib']:.2f} GiB" if g["peak_gpu_gib"] is not None else ""
        lines.append(
            f"generator alone (UNet + VAE decode):  {g['fps']:.1f} frames/s "
            f"(batch {g['batch']}, {g['dtype']}{gpu}{_util(g['gpu_util'])})"
        )
    rast = r.get("rasterizer")
    if rast:
        lines.append(
            f"rasteriser alone (mouth depth):       {rast['ms_per_frame']:.2f} ms per frame "
            f"({rast['vertices']} vertices, {rast['triangles']} triangles, batch {rast['batch']})"
        )
    return "\n".join(lines)


def main(args) -> int:
    import sys

    dtype = {None: None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]

    def save(result: dict) -> None:
        if args.json:
            tmp = Path(f"{args.json}.tmp")
            tmp.write_text(json.dumps(result, indent=2) + "\n")
            tmp.replace(args.json)

    result = run(
        args.device,
        dtype,
        args.frames,
        args.size,
        args.batch_size,
        args.video,
        args.audio,
        log=lambda m: print(m, file=sys.stderr),
        only=getattr(args, "only", "all"),
        save=save,
    )
    print(table(result))
    return 0
