"""``python -m joygen batch PAIRS --output-dir DIR``: edit a list of (video, audio) pairs, resumably.

PAIRS is a CSV (or, for ``.tsv``, tab-separated) file with the columns ``video``, ``audio`` and, optionally,
``output`` (a file name inside DIR); paths are relative to the list's folder. Without a header the first two
columns are taken as video and audio.

Several processes split the list: pair ``i`` belongs to process ``i % world_size``. The rank and world size
come from ``--rank/--world-size``, else from the ``RANK``/``WORLD_SIZE`` variables that launchers set
(``torchrun --nproc-per-node N -m joygen batch ...``, ``accelerate launch --num_processes N -m joygen batch
...``, or the same on several machines); each process uses the GPU of its ``LOCAL_RANK``. A pair is done when
its video and its JSON report (written last) exist: a rerun skips it, so an interrupted batch resumes where it
stopped. A pair that fails with an input error is recorded in ``NAME.error.txt`` and the batch goes on.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, JoyGenError


@dataclass(frozen=True)
class Pair:
    index: int
    video: Path
    audio: Path
    output: str  # file name inside the output folder


def read_pairs(path: str | Path) -> list[Pair]:
    """Read the list (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pair list '{path}' does not exist")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh, delimiter=delimiter) if r and not r[0].startswith("#")]
    if not rows:
        raise InputError(f"pair list '{path}' is empty")
    header = [c.strip().lower() for c in rows[0]]
    if "video" in header and "audio" in header:
        cols = {name: header.index(name) for name in ("video", "audio", "output") if name in header}
        rows = rows[1:]
    else:
        cols = {"video": 0, "audio": 1}
    pairs = []
    for i, row in enumerate(rows):
        if len(row) < 2:
            raise InputError(f"pair list '{path}', row {i + 1}: needs a video and an audio column")
        video = (path.parent / row[cols["video"]].strip()).resolve()
        audio = (path.parent / row[cols["audio"]].strip()).resolve()
        name = row[cols["output"]].strip() if "output" in cols and len(row) > cols["output"] else ""
        pairs.append(Pair(i, video, audio, name or f"{i:05d}_{video.stem}__{audio.stem}.mp4"))
    names = [p.output for p in pairs]
    if len(set(names)) != len(names):
        raise InputError(f"pair list '{path}' gives the same output name twice")
    return pairs


def launcher_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int, int]:
    """(rank, world size, local rank) from the flags, else from the launcher's environment."""
    world = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", 1))
    rank = rank if rank is not None else int(os.environ.get("RANK", 0))
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not 0 <= rank < world:
        raise JoyGenError(f"rank {rank} is outside a world of {world} processes")
    return rank, world, local


def run_batch(pairs: list[Pair], output_dir: str | Path, pipe, config, rank: int, world: int, log=print) -> dict:
    """Edit this process's share of the pairs; returns counts of done, skipped and failed pairs."""
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    mine = [p for p in pairs if p.index % world == rank]
    for n, pair in enumerate(mine, start=1):
        output = out_dir / pair.output
        report = output.with_suffix(".json")
        error = output.with_suffix(".error.txt")
        prefix = f"[rank {rank}/{world}] {n}/{len(mine)} {pair.output}"
        if output.is_file() and report.is_file():
            counts["skipped"] += 1
            log(f"{prefix}: already done, skipped")
            continue
        try:
            result = pipe(pair.video, pair.audio, output, config=config, report=report)
        except JoyGenError as exc:
            counts["failed"] += 1
            error.write_text(f"{exc}\n")
            log(f"{prefix}: failed: {exc}")
            continue
        error.unlink(missing_ok=True)
        counts["done"] += 1
        log(f"{prefix}: {result.num_frames} frames in {sum(result.timings.values()):.1f} s")
    return counts
