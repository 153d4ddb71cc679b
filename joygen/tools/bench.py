"""``python -m joygen bench``: frames per second of every stage and end to end, with peak memory.

Speed does not depend on the weights' values, so the models are built at their real sizes with random
weights (``--size real``; ``--size tiny`` uses the tiny test set). Two pieces cannot be built at their real
size without their real files and are stand-ins, which the printed table says: DWPose (a tiny network with
its interface; the real RTMPose-l costs more) and the Basel Face Model (a procedural face mesh of the real
size, 35 721 vertices and 70 688 triangles). MTCNN runs with its real weights.

The clip is the bundled example (a 900x900, 25 fps talking face and its speech) looped to ``--frames``, or
``--video``/``--audio``. One short warm-up run, then the measured run (nothing cached), then a run of the
same video with another voice of the same length (the per-video cache at work), then the generator alone
(UNet + VAE decode on random inputs).
"""

from __future__ import annotations

import json
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch

from ..media import ffmpeg_path, run_ffmpeg
from ..pipeline import JoyGenPipeline
from ..report import versions
from ..timeline import FPS, SAMPLE_RATE
from ..weights.locator import PROJECT_ROOT, WeightSet

EXAMPLE_VIDEO = PROJECT_ROOT / "assets" / "examples" / "example_5s.mp4"
EXAMPLE_AUDIO = PROJECT_ROOT / "assets" / "examples" / "xinwen_5s.mp3"
WARMUP_FRAMES = 16
REAL_BFM_GRID = (189, 189)  # a procedural face mesh of the BFM front's size


def real_size_pipeline(work: Path, device: str, dtype: torch.dtype | None) -> JoyGenPipeline:
    """Every model at its real size with random weights (see the module docstring for the two stand-ins)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import HubertConfig, HubertModel, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from ..editor.face_parsing import BiSeNet, FaceParser
    from ..editor.mouth_editor import OFFICIAL_UNET_CONFIG, OFFICIAL_VAE_CONFIG, MouthEditor
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
    pipe = JoyGenPipeline(
        editor=MouthEditor(
            UNet2DConditionModel(**OFFICIAL_UNET_CONFIG).eval(), AutoencoderKL(**OFFICIAL_VAE_CONFIG).eval()
        ),
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
            *["-ac", "1", "-ar", str(SAMPLE_RATE), "-y"],
            ffmpeg_path(voice),
        ],
        what="preparing the voice",
    )
    run_ffmpeg(
        ["-i", ffmpeg_path(voice), "-af", "areverse", "-y", ffmpeg_path(other)], what="preparing the second voice"
    )
    return clip, voice, other


class PeakRSS:
    """Samples this process's resident memory every 20 ms while active (the kernel's high-water mark
    cannot be reset, so model loading would otherwise hide the run's own peak)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def __enter__(self):
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generator_fps(pipe: JoyGenPipeline, batch: int, repeats: int) -> float:
    """UNet + VAE decode alone, on random latents and audio tokens of one batch, repeated."""
    editor = pipe.editor
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 12, 32, 32, generator=gen).to(editor.device, editor.dtype)
    tokens = torch.randn(batch, 50, 384, generator=gen).to(editor.device, editor.dtype)
    with torch.inference_mode():
        editor.decode(editor.generate(x, tokens))  # warm-up
        _sync(editor.device)
        start = time.perf_counter()
        for _ in range(repeats):
            editor.decode(editor.generate(x, tokens))
        _sync(editor.device)
    return batch * repeats / (time.perf_counter() - start)


def run(
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    frames: int = 250,
    size: str = "real",
    batch_size: int | None = None,
    video: str | None = None,
    audio: str | None = None,
    log=print,
) -> dict:
    """Run the benchmark and return its results (see the module docstring)."""
    dev = torch.device(device)
    batch = batch_size or (32 if dev.type == "cuda" else 8)
    with tempfile.TemporaryDirectory(prefix="joygen-bench-") as tmp:
        work = Path(tmp)
        log(f"building the {size}-size models on {device} ...")
        start = time.perf_counter()
        if size == "tiny":
            from ..weights.tiny import write_tiny_weights

            pipe = JoyGenPipeline.from_pretrained(write_tiny_weights(work / "weights"), device=device, dtype=dtype)
        else:
            pipe = real_size_pipeline(work, device, dtype)
        load_s = time.perf_counter() - start
        log(f"preparing a {frames}-frame clip ...")
        clip, voice, other = prepare_clip(work, frames, video, audio)
        (work / "warmup").mkdir()
        warm_clip, warm_voice, _ = prepare_clip(work / "warmup", WARMUP_FRAMES, video, audio)
        config = pipe.config.with_options(batch_size=batch, cache_dir=str(work / "cache"), preset="veryfast")
        log("warming up ...")
        pipe(warm_clip, warm_voice, work / "warmup.mp4", config=config.with_options(cache=False))
        results = {}
        for name, voice_file in (("first run", voice), ("cached video, new voice", other)):
            log(f"measuring: {name} ...")
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            with PeakRSS() as rss:
                start = time.perf_counter()
                out = pipe(clip, voice_file, work / f"{len(results)}.mp4", config=config)
                _sync(dev)
                seconds = time.perf_counter() - start
            results[name] = {
                "frames": out.num_frames,
                "seconds": round(seconds, 3),
                "fps": round(out.num_frames / seconds, 2),
                "stages": {
                    k: {"seconds": v, "fps": round(out.num_frames / v, 1) if v else None}
                    for k, v in out.timings.items()
                },
                "peak_host_gib": round(rss.peak / 2**30, 3),
                "peak_gpu_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 3) if dev.type == "cuda" else None,
            }
        log("measuring: generator alone ...")
        gen_fps = generator_fps(pipe, batch, repeats=3 if dev.type == "cpu" else 20)
        info = probe_size(clip)
    return {
        "device": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "size": size,
        "stand_ins": []
        if size == "tiny"
        else ["DWPose (tiny network, real RTMPose-l costs more)", "BFM (procedural mesh of the real size)"],
        "clip": {"frames": frames, "width": info[0], "height": info[1], "fps": FPS},
        "batch_size": batch,
        "model_load_seconds": round(load_s, 1),
        "runs": results,
        "generator_fps": round(gen_fps, 1),
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions(),
    }


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


def table(r: dict) -> str:
    """The results as a plain-text table."""
    first = r["runs"]["first run"]
    lines = [
        f"device: {r['device']} | dtype {r['dtype']} | models: {r['size']} size, random weights | "
        f"joygen {r['versions']['joygen']} ({r['commit']}) | torch {r['versions']['torch']} | {r['date']}",
        f"clip: {r['clip']['frames']} frames, {r['clip']['width']}x{r['clip']['height']} at 25 fps | batch {r['batch_size']}",
    ]
    if r["stand_ins"]:
        lines.append("stand-ins: " + "; ".join(r["stand_ins"]))
    lines += ["", f"{'stage (first run)':34s}{'seconds':>10s}{'frames/s':>12s}"]
    for stage, v in sorted(first["stages"].items(), key=lambda kv: -kv[1]["seconds"]):
        lines.append(f"{stage:34s}{v['seconds']:10.2f}{(v['fps'] or float('nan')):12.1f}")
    lines.append("")
    for name, run_ in r["runs"].items():
        gpu = f", peak GPU {run_['peak_gpu_gib']:.2f} GiB" if run_["peak_gpu_gib"] is not None else ""
        lines.append(
            f"end to end, {name + ':':28s}{run_['seconds']:8.2f} s {run_['fps']:10.2f} frames/s "
            f"(peak host {run_['peak_host_gib']:.2f} GiB{gpu})"
        )
    lines.append(f"generator alone (UNet + VAE decode):  {r['generator_fps']:.1f} frames/s")
    return "\n".join(lines)


def main(args) -> int:
    import sys

    dtype = {None: None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    result = run(
        args.device,
        dtype,
        args.frames,
        args.size,
        args.batch_size,
        args.video,
        args.audio,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
