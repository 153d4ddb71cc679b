"""The ``eval`` subcommand's options and its run (``python -m joygen eval --help``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import JoyGenError


def add_eval_parser(sub, add_weight_args) -> None:
    p = sub.add_parser(
        "eval",
        help="measure lip sync (LSE-C / LSE-D, SyncNet) and FID of edited videos, as lip-sync papers do",
        description="Score VIDEOs (files, folders, a CSV of edited,source,audio rows, or a `joygen batch` output "
        "folder) with syncnet_python's protocol. Sources given with the edits are scored too, with their own voice "
        "(GT rows). Prints a markdown table; see docs/evaluation.md.",
    )
    p.add_argument("inputs", nargs="+", metavar="VIDEO")
    p.add_argument("--cropped", action="store_true", help="the videos are 224x224 face tracks already: no detection")
    add_weight_args(p)
    p.add_argument("--json", metavar="OUT", help="write the results (per video and the means) as JSON")
    p.add_argument("--markdown", metavar="OUT", help="write the table as markdown")
    p.add_argument(
        "--results",
        metavar="JSONL",
        help="per-video results, appended as each finishes; a rerun skips those already there "
        "(default: OUT.rows.jsonl next to --json)",
    )
    p.add_argument(
        "--protocol",
        choices=["paired", "hdtf-unpaired"],
        default="paired",
        help="paired (default): each edit with its own sound; hdtf-unpaired: each edit's voice comes from another "
        "source clip (checked), see --make-pairs",
    )
    p.add_argument(
        "--make-pairs",
        metavar="CSV",
        help="with --protocol hdtf-unpaired: write the `joygen batch` list pairing each source clip (the inputs) with "
        "the voice of the next one, then stop",
    )
    p.add_argument("--fid", action="store_true", help="also FID between the face crops of the edits and their sources")
    p.add_argument(
        "--min-track", type=int, default=100, help="a face track needs more detections than this (official 100)"
    )
    p.add_argument(
        "--detector", choices=["mtcnn", "s3fd"], default="mtcnn", help="face detector (S3FD is not implemented)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--batch-size", type=int, default=20, help="windows per SyncNet pass (official 20)")
    p.add_argument("--vshift", type=int, default=15, help="largest offset searched, frames (official 15)")
    p.add_argument("--keep-work", metavar="DIR", help="keep the per-video work folders (frames, crops) under DIR")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run_eval_command(args: argparse.Namespace, device: str) -> int:
    from ..media import ffmpeg_version
    from ..weights.locator import WeightsLocator
    from .api import PROTOCOL, default_vad, load_inception_weights, load_syncnet_weights, syncnet_hint
    from .runner import EvalSettings, Models, ResultsFile, collect_items, make_unpaired_pairs, markdown, run_eval
    from .tracks import DETECTORS

    if args.make_pairs:
        if args.protocol != "hdtf-unpaired":
            raise JoyGenError("--make-pairs belongs to --protocol hdtf-unpaired")
        items = collect_items(args.inputs)
        bad = [i.problem for i in items if i.problem]
        if bad:
            raise JoyGenError(bad[0])
        out = Path(args.make_pairs)
        out.parent.mkdir(parents=True, exist_ok=True)
        pairs = make_unpaired_pairs([i.path for i in items], out)
        print(f"wrote {len(pairs)} unpaired (video, voice) pairs to {out}; next:")
        print(f"  python -m joygen batch {out} --output-dir EDITS/")
        print("  python -m joygen eval EDITS/ --protocol hdtf-unpaired --json results.json")
        return 0
    if args.min_track < 1 or args.batch_size < 1 or args.vshift < 1:
        raise JoyGenError("--min-track, --batch-size and --vshift must be at least 1")
    locator = WeightsLocator(args.weights, args.weights_repo, args.weights_revision)
    syncnet = load_syncnet_weights(locator, device)
    if syncnet is None:
        raise JoyGenError(syncnet_hint(locator))
    models = Models(syncnet)
    if not args.cropped:
        models.detector = DETECTORS[args.detector](locator, device)
        models.vad = default_vad(locator)
    if args.fid:
        models.inception = load_inception_weights(locator, device)
        if models.inception is None:
            raise JoyGenError(locator.missing_message(["inception"]))
    settings = EvalSettings(
        cropped=args.cropped,
        protocol=args.protocol,
        min_track=args.min_track,
        vshift=args.vshift,
        batch_size=args.batch_size,
        detector=args.detector,
        fid=args.fid,
    )
    results_path = Path(args.results) if args.results else (Path(args.json + ".rows.jsonl") if args.json else None)
    items = collect_items(args.inputs)
    if syncnet.tiny:
        print("joygen: warning: tiny random SyncNet weights: the scores are meaningless", file=sys.stderr)
    elif syncnet.official is False:
        print(
            "joygen: warning: these SyncNet weights are not the official syncnet_v2.model (sha256 differs): "
            "scores are not comparable with published numbers",
            file=sys.stderr,
        )
    keep = Path(args.keep_work) if args.keep_work else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    report = run_eval(items, models, settings, ResultsFile(results_path), show_progress=not args.quiet, keep_work=keep)
    report["protocol"] = {
        "name": args.protocol,
        "metric": PROTOCOL,
        "face_tracks": "given (--cropped)"
        if args.cropped
        else f"{args.detector} detections, min_track {args.min_track}",
        "vshift": args.vshift,
        "batch_size": args.batch_size,
        "ffmpeg": ffmpeg_version(),
        "syncnet": syncnet.describe(),
        "inception": models.inception.describe() if models.inception else None,
        "aggregate": "mean over videos of LSE-C and of LSE-D (failed rows left out)",
        "jitter": "box and mouth-corner (relative to the nose) motion of each face track's detections, px/frame: "
        "motion = mean |x[t+1] - x[t]|, jitter = mean |x[t+1] - 2x[t] + x[t-1]|; speech / silence by "
        + (models.vad.description if models.vad is not None else "no voice detector (not installed)"),
    }
    report["results_file"] = None if results_path is None else str(results_path)
    table = markdown(report)
    print(table)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
