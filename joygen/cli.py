"""Command line: ``python -m joygen edit | weights import | weights tiny | weights list``.

Every problem a user can fix (bad input, missing weights) ends with one ``joygen: error: ...`` line on
stderr and exit code 1, never a traceback. Run ``python -m joygen COMMAND --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from . import __version__
from .errors import JoyGenError

EXIT_ERROR = 1  # a problem explained on stderr
EXIT_INTERRUPTED = 130


def _quiet_libraries() -> None:
    """Keep the terminal for joygen's own messages: library chatter goes below the error level."""
    warnings.filterwarnings("ignore")
    for name in ("transformers", "diffusers", "huggingface_hub", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import diffusers
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        diffusers.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise JoyGenError("--device cuda was asked for, but PyTorch sees no CUDA device here; use --device cpu")
    return name


def _dtype(name: str | None):
    import torch

    return (
        None if name is None else {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    )


def _add_weight_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights", metavar="DIR", help="local weights folder (default: $JOYGEN_WEIGHTS_DIR or checkpoints/)"
    )
    p.add_argument("--weights-repo", metavar="REPO", help="Hub repo in joygen's layout (default: $JOYGEN_WEIGHTS_REPO)")
    p.add_argument("--weights-revision", metavar="REV", help="revision of --weights-repo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m joygen",
        description="joygen: re-draw the mouth of a talking-face video so that it follows a new voice track.",
    )
    parser.add_argument("--version", action="version", version=f"joygen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    edit = sub.add_parser(
        "edit",
        help="edit a video so that its lips follow a new voice track",
        description="Edit VIDEO so that its lips follow AUDIO; write OUTPUT (H.264 + AAC mp4).",
    )
    edit.add_argument("--video", required=True, help="talking-face video (or a still image)")
    edit.add_argument(
        "--audio", required=True, help="new voice track (wav, mp3, m4a, ogg, flac, or a video with sound)"
    )
    edit.add_argument("--output", "-o", required=True, help="mp4 file to write")
    _add_weight_args(edit)
    edit.add_argument("--unet", metavar="DIR", help="a diffusers UNet folder to edit with (e.g. a training checkpoint)")
    edit.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    edit.add_argument(
        "--dtype",
        choices=["float32", "float16", "bfloat16"],
        help="dtype of UNet/VAE/Whisper (default: float32 on CPU, float16 on CUDA)",
    )
    edit.add_argument("--report", metavar="JSON", help="write a JSON report (inputs, frame counts, timings, weights)")
    edit.add_argument(
        "--intermediates", metavar="DIR", help="write per-stage artifacts (faces, crops, generated faces)"
    )
    edit.add_argument("--work-dir", metavar="DIR", help="scratch folder to use (kept); default: a temporary one")
    edit.add_argument(
        "--no-depth",
        dest="use_depth",
        action="store_false",
        default=None,
        help="skip audio-to-motion and 3D: condition the editor on a black depth map (the official no-depth mode)",
    )
    edit.add_argument("--seed", type=int, help="seed of the audio-to-expression sampling (default 0)")
    edit.add_argument("--temperature", type=float, help="prior noise scale of audio2secc (default 0.2)")
    edit.add_argument("--mouth-amp", type=float, help="mouth amplitude fed to audio2secc (default 0.45)")
    edit.add_argument(
        "--hubert-input",
        choices=["channel0", "mix"],
        help="what HuBERT hears of a stereo track: channel0 (official, default) or the mix",
    )
    edit.add_argument(
        "--no-landmark-box",
        dest="landmark_box",
        action="store_false",
        default=None,
        help="crop faces with the MTCNN box only (no DWPose landmark box)",
    )
    edit.add_argument("--batch-size", type=int, help="frames per model batch (default 8)")
    edit.add_argument("--crf", type=int, help="H.264 quality, 0 (lossless) .. 51 (default 18)")
    edit.add_argument("--preset", help="x264 preset (default medium)")
    edit.add_argument("--feather", type=float, help="paste-back feather, fraction of the face context (default 0.1)")
    edit.add_argument("--max-seconds", type=float, help="refuse voice tracks longer than this")
    edit.add_argument("--lossless", action="store_true", default=None, help="lossless RGB H.264 output (large)")
    edit.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        default=None,
        help="do not reuse or store the per-video work (faces, 3D fits, latents, masks)",
    )
    edit.add_argument("--cache-dir", metavar="DIR", help="per-video cache folder (default: ~/.cache/joygen)")
    edit.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    bench = sub.add_parser("bench", help="frames per second of every stage, at real size with random weights")
    bench.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    bench.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="default: fp16 on CUDA, fp32 on CPU")
    bench.add_argument("--frames", type=int, default=250, help="clip length in frames at 25 fps (default 250 = 10 s)")
    bench.add_argument("--size", choices=["real", "tiny"], default="real", help="model sizes (default real)")
    bench.add_argument("--batch-size", type=int, help="frames per batch (default 32 on CUDA, 8 on CPU)")
    bench.add_argument("--video", help="clip to use (default: the bundled example, looped)")
    bench.add_argument("--audio", help="voice to use (default: the bundled example speech, looped)")
    bench.add_argument(
        "--only", choices=["all", "generator"], default="all", help="'generator': build and time only UNet + VAE decode"
    )
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON (rewritten after every phase)")
    batch = sub.add_parser(
        "batch",
        help="edit a list of (video, audio) pairs, resumably, across processes or machines",
        description="Edit every (video, audio) pair of PAIRS into OUTPUT_DIR. Pairs already done are skipped. "
        "Run it under torchrun / accelerate launch to split the list over processes.",
    )
    batch.add_argument("pairs", metavar="PAIRS", help="CSV (or .tsv) with columns video, audio[, output]")
    batch.add_argument("--output-dir", required=True, metavar="DIR")
    _add_weight_args(batch)
    batch.add_argument("--device", default="auto", help="cpu, cuda or auto (default: the GPU of LOCAL_RANK)")
    batch.add_argument("--rank", type=int, help="this process's rank (default: $RANK or 0)")
    batch.add_argument("--world-size", type=int, help="number of processes (default: $WORLD_SIZE or 1)")
    batch.add_argument("--no-depth", dest="use_depth", action="store_false", default=None, help="the no-depth mode")
    batch.add_argument("--batch-size", type=int, help="frames per model batch (default 8)")
    batch.add_argument("--crf", type=int, help="H.264 quality (default 18)")
    prep = sub.add_parser(
        "prepare",
        help="turn talking-face videos into an editor training set",
        description="Prepare every video of VIDEOS (a folder or one file) into OUT_DIR, resumably per video.",
    )
    prep.add_argument("videos", metavar="VIDEOS")
    prep.add_argument("out_dir", metavar="OUT_DIR")
    _add_weight_args(prep)
    prep.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    prep.add_argument("--min-span", type=int, default=7, help="shortest single-face run kept, in frames (default 7)")
    prep.add_argument("--iou-threshold", type=float, default=0.7, help="landmark-box gate (official training: 0.7)")
    train = sub.add_parser("train", help="train the editor UNet (use accelerate launch for several GPUs)")
    train.add_argument("config", metavar="CONFIG", help="YAML training configuration (see configs/)")
    weights = sub.add_parser("weights", help="manage model weights").add_subparsers(
        dest="weights_command", required=True
    )
    imp = weights.add_parser("import", help="convert the official JoyGen pretrained_models/ tree to joygen's layout")
    imp.add_argument("source", metavar="PRETRAINED_MODELS_DIR")
    imp.add_argument("--output", metavar="DIR", help="where to write (default: checkpoints/)")
    imp.add_argument("--push-to-hub", metavar="REPO", help="also upload the result to this Hub model repo")
    imp.add_argument(
        "--public",
        action="store_true",
        help="create the Hub repo public (default private: the BFM may not be redistributed)",
    )
    imp.add_argument(
        "--any-size",
        action="store_true",
        help="accept checkpoints whose sizes differ from the official ones (test trees)",
    )
    tiny = weights.add_parser("tiny", help="write a tiny random-weight set (for tests; its output is meaningless)")
    tiny.add_argument("folder", metavar="DIR")
    tiny.add_argument("--seed", type=int, default=0)
    lst = weights.add_parser("list", help="show where every artifact resolves from")
    _add_weight_args(lst)
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def cmd_edit(args: argparse.Namespace) -> int:
    from .config import PipelineConfig
    from .pipeline import JoyGenPipeline, check_inputs

    if args.batch_size is not None and args.batch_size < 1:
        raise JoyGenError("--batch-size must be at least 1")
    if args.crf is not None and not 0 <= args.crf <= 51:
        raise JoyGenError("--crf must be between 0 and 51")
    config = PipelineConfig().with_options(
        batch_size=args.batch_size,
        crf=args.crf,
        preset=args.preset,
        feather=args.feather,
        max_seconds=args.max_seconds,
        lossless=args.lossless,
        cache=args.cache,
        cache_dir=args.cache_dir,
        use_depth=args.use_depth,
        seed=args.seed,
        temperature=args.temperature,
        mouth_amp=args.mouth_amp,
        hubert_input=args.hubert_input,
        landmark_box=args.landmark_box,
    )
    check_inputs(args.video, args.audio, config)  # fail fast, before any model is loaded
    pipe = JoyGenPipeline.from_pretrained(
        args.weights,
        repo_id=args.weights_repo,
        revision=args.weights_revision,
        device=_device(args.device),
        dtype=_dtype(args.dtype),
        config=config,
        unet=args.unet,
    )
    if pipe.tiny_weights:
        print("joygen: warning: tiny random weights: the output is meaningless", file=sys.stderr)
    result = pipe(
        args.video,
        args.audio,
        args.output,
        report=args.report,
        intermediates=args.intermediates,
        work_dir=args.work_dir,
        show_progress=not args.quiet,
    )
    for note in result.warnings:
        if "tiny" not in note:
            print(f"joygen: warning: {note}", file=sys.stderr)
    total = sum(result.timings.values())
    print(f"wrote {result.video} ({result.num_frames} frames at {result.fps} fps) in {total:.1f} s")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import launcher_rank, read_pairs, run_batch
    from .config import PipelineConfig
    from .pipeline import JoyGenPipeline

    pairs = read_pairs(args.pairs)
    rank, world, local = launcher_rank(args.rank, args.world_size)
    device = _device(args.device)
    if device == "cuda":
        device = f"cuda:{local}"
    config = PipelineConfig().with_options(use_depth=args.use_depth, batch_size=args.batch_size, crf=args.crf)
    pipe = JoyGenPipeline.from_pretrained(
        args.weights, repo_id=args.weights_repo, revision=args.weights_revision, device=device, config=config
    )
    counts = run_batch(pairs, args.output_dir, pipe, config, rank, world, log=lambda m: print(m, flush=True))
    print(f"[rank {rank}/{world}] done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']}")
    return 0 if counts["failed"] == 0 else EXIT_ERROR


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import PrepareConfig, prepare

    config = PrepareConfig(iou_threshold=args.iou_threshold, min_span=args.min_span)
    summary = prepare(args.videos, args.out_dir, args.weights, _device(args.device), config, log=print)
    print(json.dumps(summary, indent=1))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    if args.weights_command == "tiny":
        from .tiny_weights import write_tiny_weights

        folder = write_tiny_weights(args.folder, seed=args.seed)
        print(f"wrote a tiny random-weight set to {folder} (for tests: everything made with it is meaningless)")
        return 0
    if args.weights_command == "import":
        from .weights_import import import_official

        out = import_official(
            args.source,
            args.output,
            push_to_hub=args.push_to_hub,
            private=not args.public,
            any_size=args.any_size,
            log=print,
        )
        print(f"imported into {out}")
        return 0
    from .weights import WeightsLocator

    locator = WeightsLocator(args.weights, args.weights_repo, args.weights_revision)
    rows = locator.status()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        mark = "ok " if row["found"] else "-- "
        where = row["source"] + (" (TINY, meaningless)" if row["tiny"] else "") if row["found"] else "missing"
        print(f"{mark}{row['name']:13s} {row['title']}\n     {where}")
        if row["how"]:
            print(f"     to supply it: {row['how']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        if args.command == "edit":
            return cmd_edit(args)
        if args.command == "batch":
            return cmd_batch(args)
        if args.command == "prepare":
            return cmd_prepare(args)
        if args.command == "train":
            from .train import main as train_main

            return train_main(args.config)
        if args.command == "bench":
            from .bench import main as bench_main

            args.device = _device(args.device)
            return bench_main(args)
        return cmd_weights(args)
    except JoyGenError as exc:
        print(f"joygen: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("joygen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
