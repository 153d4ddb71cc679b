"""``python -m joygen eval``: lip sync (and FID) of many videos, resumably, as the papers report them.

Inputs (any mix): video files; folders of videos; a CSV/TSV of ``edited, source, audio`` rows (header names
``edited``/``generated``/``path``, ``source``/``original``, ``audio``/``voice``; without a header the columns are
taken in that order; paths relative to the list's folder; source and audio may be empty); the output folder of
``python -m joygen batch`` (each ``NAME.mp4`` with its ``NAME.json`` report gives the source video and the voice;
``NAME.error.txt`` marks a failed edit).

Every edited video is scored with its own sound track (the voice muxed in by the editor; a separate ``audio`` is
used only when the video has none). Every distinct source is scored too, with its own voice: the "source" (GT)
rows. A row that cannot be scored (missing file, no sound, no face, too short, failed edit) carries the reason;
the rest are scored. Rows are appended to a JSONL results file as they finish; a rerun with the same settings
skips the rows already there.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, JoyGenError
from ..media import probe, run_ffmpeg
from .protocol import ffmpeg_path
from .score import ScoreConfig, score_video
from .tracks import TrackConfig

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".ts"}
PROTOCOLS = ("paired", "hdtf-unpaired")
_EDITED = ("edited", "generated", "path", "output_video")
_SOURCE = ("source", "original", "reference")
_AUDIO = ("audio", "voice")


@dataclass(frozen=True)
class EvalItem:
    path: Path
    source: Path | None = None
    audio: Path | None = None
    role: str = "edited"  # "edited" or "source" (a source clip with its own voice: the GT row)
    problem: str | None = None  # known before scoring: missing file, failed edit, ...


@dataclass(frozen=True)
class EvalSettings:
    cropped: bool = False
    protocol: str = "paired"
    min_track: int = TrackConfig.min_track
    vshift: int = 15
    batch_size: int = 20
    detector: str = "mtcnn"
    fid: bool = False

    def key_part(self) -> dict:
        d = asdict(self)
        d.pop("protocol")
        d.pop("fid")
        return d


# -- inputs ------------------------------------------------------------------------------------------------------


def _path_or_none(base: Path, cell: str | None) -> Path | None:
    cell = (cell or "").strip()
    return (base / cell).resolve() if cell else None


def read_csv_items(path: Path) -> list[EvalItem]:
    """Rows of an ``edited, source, audio`` list (see the module docstring)."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh, delimiter=delimiter) if r and any(c.strip() for c in r)]
    rows = [r for r in rows if not r[0].lstrip().startswith("#")]
    if not rows:
        raise InputError(f"list '{path}' is empty")
    header = [c.strip().lower() for c in rows[0]]

    def column(names):
        return next((header.index(n) for n in names if n in header), None)

    if column(_EDITED) is not None:
        cols = (column(_EDITED), column(_SOURCE), column(_AUDIO))
        rows = rows[1:]
    elif "video" in header and "audio" in header:
        raise InputError(
            f"list '{path}' looks like a `joygen batch` pair list (video, audio); give eval the batch's output "
            "folder, or a list with the columns edited, source, audio"
        )
    else:
        cols = (0, 1, 2)
    items = []
    for n, row in enumerate(rows, start=1):
        cells = [row[i] if i is not None and i < len(row) else None for i in cols]
        edited, source, audio = (_path_or_none(path.parent, c) for c in cells)
        if edited is None:
            items.append(EvalItem(path.parent / f"(row {n})", problem=f"list '{path}', row {n}: no edited video"))
            continue
        problem = None
        for role, p in (("edited video", edited), ("source video", source), ("audio", audio)):
            if p is not None and not p.is_file():
                problem = f"list '{path}', row {n}: {role} '{p}' does not exist"
                break
        items.append(EvalItem(edited, source, audio, problem=problem))
    return items


def read_batch_folder(folder: Path) -> list[EvalItem] | None:
    """Items of a ``joygen batch`` output folder, or None when ``folder`` is not one."""
    items = []
    for report in sorted(folder.glob("*.json")):
        try:
            data = json.loads(report.read_text())
            source = Path(data["inputs"]["video"]["path"])
            audio = Path(data["inputs"]["audio"]["path"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        video = report.with_suffix(".mp4")
        problem = None if video.is_file() else f"the edit '{video}' named by '{report.name}' does not exist"
        items.append(EvalItem(video, source.resolve(), audio.resolve(), problem=problem))
    for error in sorted(folder.glob("*.error.txt")):
        video = folder / (error.name[: -len(".error.txt")] + ".mp4")
        if not any(i.path == video for i in items):
            why = error.read_text(errors="replace").strip().splitlines()
            items.append(EvalItem(video, problem=f"the edit failed: {why[0] if why else 'see ' + error.name}"))
    return items or None


def collect_items(inputs: list[str | Path]) -> list[EvalItem]:
    """Every item named by the command's inputs, in order, without duplicates."""
    items: list[EvalItem] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            batch = read_batch_folder(p)
            if batch is not None:
                items += batch
            else:
                videos = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
                if not videos:
                    items.append(
                        EvalItem(p, problem=f"folder '{p}' holds no videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
                    )
                items += [EvalItem(v.resolve()) for v in videos]
        elif p.suffix.lower() in {".csv", ".tsv"} and p.is_file():
            items += read_csv_items(p)
        elif p.is_file():
            items.append(EvalItem(p.resolve()))
        else:
            items.append(EvalItem(p, problem=f"'{p}' does not exist"))
    seen, unique = set(), []
    for item in items:
        ident = (item.path, item.audio, item.role)
        if ident not in seen:
            seen.add(ident)
            unique.append(item)
    return unique


def source_items(items: list[EvalItem]) -> list[EvalItem]:
    """One "source" item per distinct source clip, scored with its own voice."""
    out, seen = [], set()
    for item in items:
        if item.source is None or item.source in seen:
            continue
        seen.add(item.source)
        problem = None if item.source.is_file() else f"source video '{item.source}' does not exist"
        out.append(EvalItem(item.source, role="source", problem=problem))
    return out


def check_protocol(items: list[EvalItem], protocol: str) -> list[EvalItem]:
    """hdtf-unpaired: every edit needs a source and a voice taken from another clip."""
    if protocol != "hdtf-unpaired":
        return items
    out = []
    for item in items:
        if item.problem is None and item.role == "edited":
            if item.source is None:
                item = EvalItem(
                    item.path, item.source, item.audio, problem="hdtf-unpaired needs the source clip of this edit"
                )
            elif item.audio is not None and item.audio.resolve() == item.source.resolve():
                item = EvalItem(item.path, item.source, item.audio, problem="voice and video come from the same clip")
        out.append(item)
    return out


# -- the hdtf-unpaired pairing -------------------------------------------------------------------------------------


def make_unpaired_pairs(sources: list[Path], out_csv: Path) -> list[tuple[Path, Path]]:
    """Write a `joygen batch` list: clip i (sorted by name) is edited with the voice of clip i+1 (the last with the
    first's), cut to clip i's duration (16 kHz mono wav files in ``voices/`` next to the list)."""
    clips = sorted({Path(s).resolve() for s in sources})
    if len(clips) < 2:
        raise InputError("hdtf-unpaired pairs need at least two source clips")
    voices = out_csv.parent / "voices"
    voices.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, clip in enumerate(clips):
        donor = clips[(i + 1) % len(clips)]
        info = probe(clip, "video")
        if info.duration is None:
            raise InputError(f"'{clip}': its duration is unknown, so its voice cannot be cut to it")
        voice = voices / f"{i:05d}_{donor.stem}.wav"
        run_ffmpeg(
            ["-y", "-i", ffmpeg_path(donor), "-vn", "-ac", "1", "-ar", "16000", "-t", f"{info.duration:.3f}"]
            + ["-acodec", "pcm_s16le", ffmpeg_path(voice)],
            what=f"cutting the voice of '{donor}'",
        )
        pairs.append((clip, voice))
    with open(out_csv, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video", "audio", "output"])
        for i, (clip, voice) in enumerate(pairs):
            writer.writerow([str(clip), str(voice), f"{i:05d}_{clip.stem}__{voice.stem.split('_', 1)[1]}.mp4"])
    return pairs


# -- results file ---------------------------------------------------------------------------------------------------


def _identity(p: Path | None) -> list:
    if p is None:
        return [None]
    try:
        st = p.stat()
        return [str(p.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(p), None, None]


def item_key(item: EvalItem, settings: EvalSettings, weights_id: str) -> str:
    blob = json.dumps([item.role, _identity(item.path), _identity(item.audio), settings.key_part(), weights_id])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class ResultsFile:
    """Rows appended one JSON line at a time; the last row of a key wins."""

    def __init__(self, path: Path | None):
        self.path = path

    def load(self) -> dict[str, dict]:
        rows: dict[str, dict] = {}
        if self.path is None or not self.path.is_file():
            return rows
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
                rows[row["key"]] = row
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interrupted run
        return rows

    def append(self, row: dict) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()

    @property
    def fid_dir(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".fid")


# -- scoring -----------------------------------------------------------------------------------------------------


@dataclass
class Models:
    syncnet: object  # a LoadedModel
    detector: object | None = None
    inception: object | None = None  # a LoadedModel
    vad: object | None = None  # a VoiceActivityDetector: splits the jitter measure into voiced and silent frames
    extra_notes: list[str] = field(default_factory=list)


def _row_base(item: EvalItem, key: str) -> dict:
    return {
        "path": str(item.path),
        "role": item.role,
        "source": None if item.source is None else str(item.source),
        "audio": None if item.audio is None else str(item.audio),
        "key": key,
    }


def score_item(item: EvalItem, models: Models, settings: EvalSettings, work_root: Path, fid_stats=None) -> dict:
    """Score one item into a row; problems become ``status: "failed"`` with a ``reason``."""
    row = {"status": "failed", "reason": item.problem, "offset": None, "lse_c": None, "lse_d": None, "frames": None}
    if item.problem:
        return row
    audio = None
    try:
        if item.role == "edited" and item.audio is not None and probe(item.path, "video").audio is None:
            audio = item.audio  # the edit has no sound: score it against the voice it was made with
        sink = None
        if fid_stats is not None:
            from .fid import image_features

            buffer: list[np.ndarray] = []

            def sink(crop, buffer=buffer):
                buffer.append(crop)
                if len(buffer) == 64:
                    fid_stats.add(image_features(models.inception.model, buffer, bgr=True))
                    buffer.clear()

        config = ScoreConfig(TrackConfig(min_track=settings.min_track), settings.vshift, settings.batch_size)
        result = score_video(
            item.path,
            models.syncnet.model,
            work_root,
            detector=models.detector,
            audio=audio,
            cropped=settings.cropped,
            config=config,
            crop_sink=sink,
            vad=models.vad,
        )
        if fid_stats is not None and buffer:
            fid_stats.add(image_features(models.inception.model, buffer, bgr=True))
        row.update(result, status="ok", reason=None)
        if audio is not None:
            row.setdefault("notes", []).append("the video has no sound: scored against the row's audio")
    except JoyGenError as exc:
        row["reason"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken file must not stop a long evaluation
        row.update(status="error", reason=f"unexpected {type(exc).__name__}: {exc}")
    return row


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get("status") == "ok" and r.get(key) is not None]
    return round(float(np.mean(values)), 6) if values else None


def _mean_leaves(blocks: list[dict]) -> dict | None:
    """The mean of every number found at the same place in ``blocks`` (nested dicts), None where none is."""
    if not blocks:
        return None
    out = {}
    for key in blocks[0]:
        values = [b.get(key) for b in blocks]
        if isinstance(values[0], dict):
            out[key] = _mean_leaves([v for v in values if isinstance(v, dict)])
        elif isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
            nums = [v for v in values if isinstance(v, (int, float))]
            out[key] = round(float(np.mean(nums)), 4) if nums else None
    return out


def aggregate(rows: list[dict]) -> dict:
    """Mean LSE-C and LSE-D over the scored videos of each role (the papers' numbers), and the mean jitter."""
    out = {}
    for role in ("edited", "source"):
        mine = [r for r in rows if r["role"] == role]
        if not mine and role == "source":
            continue
        ok = [r for r in mine if r.get("status") == "ok"]
        out[role] = {
            "videos": len(mine),
            "scored": len(ok),
            "failed": len(mine) - len(ok),
            "lse_c": _mean(mine, "lse_c"),
            "lse_d": _mean(mine, "lse_d"),
            "abs_offset": _mean([{**r, "abs": abs(r["offset"])} for r in ok], "abs"),
            "jitter": _mean_leaves([r["jitter"] for r in ok if r.get("jitter")]),
        }
    return out


def run_eval(
    items: list[EvalItem],
    models: Models,
    settings: EvalSettings,
    results: ResultsFile,
    *,
    show_progress: bool = True,
    keep_work: Path | None = None,
    log=None,
) -> dict:
    """Score every item (and every source once), reusing rows already in ``results``; returns the report."""
    from .fid import FeatureStats, fid_from_stats

    log = log or (lambda m: print(m, file=sys.stderr))
    items = check_protocol(items, settings.protocol)
    everything = items + source_items(items)
    done = results.load()
    weights_id = models.syncnet.sha256 or "unknown"
    rows: list[dict] = []
    reused = 0
    dim = getattr(models.inception.model, "feature_dim", 2048) if models.inception else 0
    fid_sets = {"edited": FeatureStats(dim), "source": FeatureStats(dim)} if settings.fid else None
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(everything), desc="scoring lip sync", unit="video", file=sys.stderr)
    for item in everything:
        if bar is not None:
            bar.set_postfix_str(Path(item.path).name[-30:])
        key = item_key(item, settings, weights_id)
        stats_file = results.fid_dir / f"{key}.npz" if (settings.fid and results.fid_dir) else None
        old = done.get(key)
        if old is not None and (not settings.fid or old.get("status") != "ok" or (stats_file and stats_file.is_file())):
            row = old
            reused += 1
        else:
            stats = FeatureStats(dim) if settings.fid else None
            started = time.perf_counter()
            work = Path(tempfile.mkdtemp(prefix="joygen-eval-", dir=keep_work))
            try:
                row = {**_row_base(item, key), **score_item(item, models, settings, work, stats)}
            finally:
                if keep_work is None:
                    shutil.rmtree(work, ignore_errors=True)
            row["seconds"] = round(time.perf_counter() - started, 2)
            if stats is not None and row["status"] == "ok" and stats_file is not None:
                stats_file.parent.mkdir(parents=True, exist_ok=True)
                np.savez(stats_file, **stats.to_arrays())
            elif stats is not None and row["status"] == "ok":
                row["_stats"] = stats
            results.append({k: v for k, v in row.items() if k != "_stats"})
            if row["status"] != "ok":
                log(f"joygen eval: {item.path}: {row['reason']}")
        if fid_sets is not None and row.get("status") == "ok":
            if "_stats" in row:
                fid_sets[row["role"]].merge(row.pop("_stats"))
            elif stats_file is not None and stats_file.is_file():
                with np.load(stats_file) as arrays:
                    fid_sets[row["role"]].merge(FeatureStats.from_arrays(arrays))
        rows.append(row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    summary = aggregate(rows)
    if fid_sets is not None:
        a, b = fid_sets["edited"], fid_sets["source"]
        if a.n >= 2 and b.n >= 2:
            summary["fid"] = {"value": round(fid_from_stats(a, b), 4), "edited_crops": a.n, "source_crops": b.n}
        else:
            summary["fid"] = {"value": None, "reason": "FID needs face crops of edited videos and of their sources"}
    return {"videos": rows, "aggregate": summary, "reused_rows": reused}


# -- the table -----------------------------------------------------------------------------------------------------


def _fmt(v, digits=3) -> str:
    return "—" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def markdown(report: dict) -> str:
    """The per-video table and the means, as markdown."""
    lines = [
        "| video | role | offset | LSE-C (higher is better) | LSE-D (lower is better) | frames | frames without face | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["videos"]:
        note = r.get("reason") or "; ".join(
            r.get("notes", []) + [n for t in r.get("tracks", []) for n in t.get("notes", [])]
        )
        name = Path(r["path"]).name.replace("|", "\\|")
        lines.append(
            f"| {name} | {'GT (source, own voice)' if r['role'] == 'source' else 'edited'} | {_fmt(r.get('offset'))} | "
            f"{_fmt(r.get('lse_c'))} | {_fmt(r.get('lse_d'))} | {_fmt(r.get('frames'))} | "
            f"{_fmt(r.get('frames_without_face'))} | {note.replace('|', '/')} |"
        )
    agg = report["aggregate"]
    lines.append("")
    for role, title in (("edited", "Edited videos"), ("source", "GT: source clips with their own voice")):
        if role in agg:
            a = agg[role]
            lines.append(
                f"**{title}**: mean over {a['scored']} of {a['videos']} video(s): LSE-C {_fmt(a['lse_c'])}, "
                f"LSE-D {_fmt(a['lse_d'])}" + (f" ({a['failed']} could not be scored)" if a["failed"] else "")
            )
            lines.append("")
    if "fid" in agg:
        f = agg["fid"]
        lines.append(
            f"**FID** (edited vs source face crops): {_fmt(f['value'], 2)}"
            + (
                f" ({f['edited_crops']} vs {f['source_crops']} crops)"
                if f.get("value") is not None
                else f" ({f['reason']})"
            )
        )
        lines.append("")
    return "\n".join(lines)
