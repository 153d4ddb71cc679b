"""Command line: ``python -m joygen edit | eval | weights import | weights tiny | weights list``.

Every problem a user can fix (bad input, missing weights) ends with one ``joygen: error: ...`` line on
stderr and exit code 1, never a traceback. Run ``python -m joygen COMMAND --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import warnings

from . import __version__
from .config import DTYPES
from .errors import ConfigError, JoyGenError

EXIT_ERROR = 1  # a problem explained on stderr
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (a container stopping, a process manager), raised in the main thread so that every cleanup runs
    exactly as for Ctrl-C: partial outputs and the work folder are removed."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one cleanup, even if the signal is sent again
    raise Terminated()


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


def _option(p: argparse.ArgumentParser, name: str, *, flag: str | None = None, negate: bool = False, **kwargs) -> None:
    """A flag for the config option ``name``, its help (and choices) read from `joygen.config`."""
    from .config import option_fields, option_help

    meta = option_fields()[name].metadata
    flag = flag or "--" + name.replace("_", "-")
    text = option_help(name)
    if negate:  # a switch that turns a default-on option off
        p.add_argument(flag, dest=name, action="store_false", default=None, help=meta["off_help"])
    elif meta["kind"] is bool:
        p.add_argument(flag, dest=name, action="store_true", default=None, help=text)
    else:
        if meta["choices"]:
            kwargs.setdefault("choices", meta["choices"])
        p.add_argument(flag, dest=name, help=text, **kwargs)


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
    edit.add_argument(
        "--output", "-o", required=True, help="mp4 file to write (not a folder); it appears only once complete"
    )
    _add_weight_args(edit)
    edit.add_argument("--unet", metavar="DIR", help="a diffusers UNet folder to edit with (e.g. a training checkpoint)")
    edit.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    _option(edit, "dtype", choices=DTYPES)
    edit.add_argument("--report", metavar="JSON", help="write a JSON report (inputs, frame counts, timings, weights)")
    edit.add_argument(
        "--intermediates", metavar="DIR", help="write per-stage artifacts (faces, crops, generated faces)"
    )
    edit.add_argument("--work-dir", metavar="DIR", help="scratch folder to use (kept); default: a temporary one")
    _option(edit, "use_depth", flag="--no-depth", negate=True)
    _option(edit, "seed", type=int)
    _option(edit, "temperature", type=float)
    _option(edit, "mouth_amp", type=float)
    _option(edit, "hubert_input")
    _option(edit, "landmark_box", flag="--no-landmark-box", negate=True)
    _option(edit, "silence_mode")
    _option(edit, "silence_seconds", type=float, metavar="S")
    _option(edit, "silence_ease_frames", type=int, metavar="N")
    _option(edit, "smoothing", flag="--no-smoothing", negate=True)
    _option(edit, "expression_window", type=int, metavar="N")
    _option(edit, "box_min_cutoff", type=float, metavar="HZ")
    _option(edit, "box_beta", type=float)
    _option(edit, "batch_size", type=int)
    _option(edit, "crf", type=int)
    _option(edit, "preset")
    _option(edit, "feather", type=float)
    _option(edit, "max_seconds", type=float)
    _option(edit, "lossless")
    _option(edit, "cache", flag="--no-cache", negate=True)
    _option(edit, "cache_dir", metavar="DIR")
    _option(edit, "sync_score", flag="--no-sync-score", negate=True)
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
    _option(batch, "use_depth", flag="--no-depth", negate=True)
    _option(batch, "silence_mode")
    _option(batch, "smoothing", flag="--no-smoothing", negate=True)
    _option(batch, "batch_size", type=int)
    _option(batch, "crf", type=int)
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
    from .metrics.command import add_eval_parser

    add_eval_parser(sub, _add_weight_args)
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
    from .config import PipelineConfig, option_names
    from .files import check_output
    from .media import check_inputs
    from .pipeline import JoyGenPipeline

    config = PipelineConfig().with_options(**{k: v for k, v in vars(args).items() if k in option_names()})
    check_inputs(args.video, args.audio, config)  # fail fast, before any model is loaded
    for path, what in ((args.output, "output"), (args.report, "report")):
        if path:
            check_output(path, what)
    pipe = JoyGenPipeline.from_pretrained(
        args.weights,
        repo_id=args.weights_repo,
        revision=args.weights_revision,
        device=_device(args.device),
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
    if result.sync is not None and result.sync["available"]:
        print(f"lip sync (SyncNet): {result.sync['summary']}")
    elif result.sync is not None:
        print(f"joygen: note: lip sync not measured. {result.sync['how']}", file=sys.stderr)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .config import PipelineConfig
    from .pipeline import JoyGenPipeline
    from .tools.batch import launcher_rank, read_pairs, run_batch

    pairs = read_pairs(args.pairs)
    rank, world, local = launcher_rank(args.rank, args.world_size)
    device = _device(args.device)
    if device == "cuda":
        device = f"cuda:{local}"
    config = PipelineConfig().with_options(
        use_depth=args.use_depth,
        silence_mode=args.silence_mode,
        smoothing=args.smoothing,
        batch_size=args.batch_size,
        crf=args.crf,
    )
    pipe = JoyGenPipeline.from_pretrained(
        args.weights, repo_id=args.weights_repo, revision=args.weights_revision, device=device, config=config
    )
    counts = run_batch(pairs, args.output_dir, pipe, pipe.config, rank, world, log=lambda m: print(m, flush=True))
    print(f"[rank {rank}/{world}] done {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']}")
    return 0 if counts["failed"] == 0 else EXIT_ERROR


def cmd_prepare(args: argparse.Namespace) -> int:
    from .tools.prepare import PrepareConfig, prepare

    config = PrepareConfig(iou_threshold=args.iou_threshold, min_span=args.min_span)
    summary = prepare(args.videos, args.out_dir, args.weights, _device(args.device), config, log=print)
    print(json.dumps(summary, indent=1))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    if args.weights_command == "tiny":
        from .weights.tiny import write_tiny_weights

        folder = write_tiny_weights(args.folder, seed=args.seed)
        print(f"wrote a tiny random-weight set to {folder} (for tests: everything made with it is meaningless)")
        return 0
    if args.weights_command == "import":
        from .weights.importer import import_official

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
    from .weights.locator import WeightsLocator

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
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    from .files import os_error_text

    try:
        if args.command == "edit":
            return cmd_edit(args)
        if args.command == "batch":
            return cmd_batch(args)
        if args.command == "prepare":
            return cmd_prepare(args)
        if args.command == "eval":
            from .metrics.command import run_eval_command

            return run_eval_command(args, _device(args.device))
        if args.command == "train":
            from .tools.train import main as train_main

            return train_main(args.config)
        if args.command == "bench":
            from .tools.bench import main as bench_main

            args.device = _device(args.device)
            return bench_main(args)
        return cmd_weights(args)
    except ConfigError as exc:
        flag = "--" + exc.option.replace("_", "-")
        print(f"joygen: error: {str(exc).replace(f'option {exc.option!r}', flag)}", file=sys.stderr)
        return EXIT_ERROR
    except JoyGenError as exc:
        print(f"joygen: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # the file system refused something joygen itself writes (space, permission)
        where = f"'{exc.filename}': " if exc.filename else ""
        print(f"joygen: error: {where}{os_error_text(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Terminated:
        print("joygen: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("joygen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
