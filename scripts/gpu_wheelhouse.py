#!/usr/bin/env python3
"""Collect what a GPU run needs beyond the host's own packages, for ``scripts/gpu_run.sh`` there.

The GPU host has no network, Python 3.12 and torch 2.11 (see ``scripts/gpu-host-packages.txt``). Run this here,
where PyPI answers, from the repo root, with the project's Python (it needs ``packaging`` and ``numpy``)::

    .venv/bin/python scripts/gpu_wheelhouse.py                      # 3.12 wheels into .whl/, fixtures into .gpu/
    .venv/bin/python scripts/gpu_wheelhouse.py --python-version 3.11 --dest /tmp/whl311   # e.g. to try it here

1. Downloads, with ``pip download --no-deps --only-binary=:all:`` for the target Python and the manylinux
   x86_64 platforms, exactly the wheels pinned in ``scripts/gpu-wheels.txt``, one file each, into a cache
   (``~/.cache/joygen/gpu-wheelhouse``), and puts them in ``--dest`` (nothing else stays there). A wheel over
   1 MB whose entries compress at least 5 % better with LZMA is repacked so (same files, byte for byte,
   checked; pip installs such a zip as any other): this is what brings the ffmpeg binary under the size limit.
   A ``[data-only=FILE]`` pin first drops the other files of the wheel's ``data/`` folders (silero-vad's
   unused exports of the same model), with its RECORD rewritten to match.
   ``MANIFEST.json`` there lists each wheel, the sha256 of the file PyPI served and of the one carried.
2. Checks the closure: every ``Requires-Dist`` of every carried wheel (markers evaluated for the target
   Python on Linux x86_64, extras skipped; not for ``[no-deps]`` ones) must be met by a carried wheel or by
   the host manifest, at a version inside the specifier. A host package with no recorded version is assumed
   to fit, and listed. Fails with the list of what is missing.
3. Copies the part of the parity fixtures that ``tests/test_gpu.py`` reads (``../shared/golden`` does not
   travel) and the demo speech into ``.gpu/`` (``golden/``, ``data/``), keeping only the arrays it reads.
4. Prints the sizes and fails if the project tree (tracked and untracked-not-ignored files) plus the wheelhouse
   exceeds ``--max-mb`` (55 MB), or if everything that travels (tree, ``.whl``, ``.gpu``) exceeds
   ``--max-total-mib`` (62 MiB; the device tool's limit is 64 MiB a call).

``scripts/gpu_report.py`` on the host imports the parsing and checking helpers from here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "scripts" / "gpu-wheels.txt"
HOST = ROOT / "scripts" / "gpu-host-packages.txt"
NEVER = ("torch", "torchvision", "torchaudio", "triton", "gradio", "gradio-client", "spaces")
PLATFORMS = [  # newest first: pip matches the N of manylinux_2_N exactly
    *(f"manylinux_2_{n}_x86_64" for n in (39, 35, 34, 31, 28, 27, 24, 17)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
HOST_PYTHON = {"3.12": "3.12.3"}  # full versions where known (scripts/gpu-host-packages.txt)
REPACK_MIN_BYTES = 1_000_000
REPACK_MIN_GAIN = 0.05

# What tests/test_gpu.py reads of the fixtures: file -> the arrays kept (None: the whole file).
GOLDEN_FILES = {
    "audio/whisper/hf/config.json": None,
    "audio/whisper/hf/model.safetensors": None,
    "audio/whisper_features.npz": ["features"],
    "vision/vae/unet_input_frame000.npz": ["face256_bgr", "depth256_bgr", "unet_input"],
    "vision/vae_tiny/config.json": None,
    "vision/vae_tiny/diffusion_pytorch_model.safetensors": None,
}
DATA_FILES = ["xinwen_5s_16k.wav"]  # conftest's demo_wav


# -- the two lists -----------------------------------------------------------------------------------------


class Pin:
    def __init__(self, name: str, version: str, flags: set[str], why: str):
        self.name, self.version, self.flags, self.why = canonicalize_name(name), version, flags, why

    def __repr__(self):
        return f"{self.name}=={self.version}"


def read_pins(path: Path = PINS) -> list[Pin]:
    """``name==version [flags] # why`` lines of ``scripts/gpu-wheels.txt``."""
    pins = []
    for raw in path.read_text().splitlines():
        line, _, why = raw.partition("#")
        if not line.strip():
            continue
        spec, *rest = line.split()
        name, sep, version = spec.partition("==")
        flags = {f.strip("[]") for f in rest}
        if not sep or not version or any(not f.startswith("[") for f in rest):
            raise SystemExit(f"{path}: cannot read '{raw.strip()}' (want name==version [flag] # why)")
        unknown = {f for f in flags if not f.startswith("data-only=")} - {"no-deps", "not-our-pin"}
        if unknown:
            raise SystemExit(f"{path}: unknown flag(s) {sorted(unknown)} in '{raw.strip()}'")
        pins.append(Pin(name, version, flags, why.strip()))
    names = [p.name for p in pins]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SystemExit(f"{path}: listed twice: {dupes}")
    bad = [n for n in names if n in NEVER or n.startswith("nvidia-")]
    if bad:
        raise SystemExit(f"{path}: never carried (the host has its own CUDA build, and no app runs): {bad}")
    return pins


def read_host(path: Path = HOST) -> dict[str, str | None]:
    """The host manifest: canonical name -> version (None where not recorded)."""
    host = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            host[canonicalize_name(name)] = version or None
    return host


# -- wheels ------------------------------------------------------------------------------------------------


def wheel_metadata(path: Path) -> dict:
    """Name, version and Requires-Dist of a wheel, from its METADATA."""
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(zf.read(meta).decode("utf-8"))
    return {
        "name": canonicalize_name(msg["Name"]),
        "version": msg["Version"],
        "requires_dist": msg.get_all("Requires-Dist") or [],
    }


def marker_env(python_version: str) -> dict:
    """The marker environment of the target: CPython ``python_version`` on Linux x86_64."""
    env = default_environment()
    env.update(
        python_version=python_version,
        python_full_version=HOST_PYTHON.get(python_version, f"{python_version}.0"),
        implementation_name="cpython",
        implementation_version=HOST_PYTHON.get(python_version, f"{python_version}.0"),
        platform_python_implementation="CPython",
        platform_machine="x86_64",
        platform_system="Linux",
        sys_platform="linux",
        os_name="posix",
    )
    return env


def needed(requires_dist: list[str], env: dict) -> list[Requirement]:
    """The requirements that apply on the target, extras left out."""
    out = []
    for text in requires_dist:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            out.append(req)
    return out


def check_closure(metas: list[dict], flags: dict[str, set], providers: dict[str, tuple[str | None, str]], env: dict):
    """Each applicable requirement of each wheel against ``providers`` (name -> (version or None, where)).

    Returns (missing, assumed, met): lists of human-readable lines.
    """
    missing, assumed, met = [], [], []
    for meta in metas:
        if "no-deps" in flags.get(meta["name"], set()):
            continue
        for req in needed(meta["requires_dist"], env):
            name = canonicalize_name(req.name)
            what = f"{meta['name']} {meta['version']} needs {req}"
            if name not in providers:
                missing.append(f"{what}: neither carried nor on the host")
                continue
            version, where = providers[name]
            if version is None:
                assumed.append(f"{what}: {where}, version not recorded")
            elif req.specifier.contains(Version(version), prereleases=True):
                met.append(f"{what}: {where} {version}")
            else:
                missing.append(f"{what}: {where} has {version}")
    return missing, assumed, met


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _supported_tags(python_version: str) -> list[str]:
    major, minor = (int(x) for x in python_version.split("."))
    tags = list(cpython_tags((major, minor), platforms=PLATFORMS))
    tags += list(compatible_tags((major, minor), platforms=PLATFORMS))
    return [str(t) for t in tags]


def pick_wheel(folder: Path, pin: Pin, tags: list[str]) -> Path:
    """The best wheel of ``pin`` in ``folder`` for the target tags."""
    best, rank = None, len(tags)
    for path in folder.glob("*.whl"):
        name, version, _, wheel_tags = parse_wheel_filename(path.name)
        if canonicalize_name(name) != pin.name or version != Version(pin.version):
            continue
        for tag in wheel_tags:
            if str(tag) in tags and tags.index(str(tag)) < rank:
                best, rank = path, tags.index(str(tag))
    if best is None:
        raise SystemExit(f"no wheel of {pin} for these tags in {folder}")
    return best


def download(pins: list[Pin], python_version: str, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", python_version, "--implementation", "cp", "-d", str(cache)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    cmd += [f"{p.name}=={p.version}" for p in pins]
    print(f"downloading {len(pins)} wheels for Python {python_version} into {cache} ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pip download failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def data_only(pin: Pin) -> set[str]:
    """The file names a ``[data-only=A,B]`` flag keeps of the wheel's ``data/`` folders (empty: no flag)."""
    return {n for f in pin.flags if f.startswith("data-only=") for n in f.partition("=")[2].split(",") if n}


def _dropped(filename: str, keep: set[str]) -> bool:
    """A data file (not Python: the ``data`` package's ``__init__.py`` stays) that ``keep`` does not name."""
    folder, _, name = filename.rpartition("/")
    in_data = folder == "data" or folder.endswith("/data")
    return bool(keep) and in_data and not name.endswith(".py") and name not in keep


def slim(src: Path, keep: set[str], cache: Path) -> Path:
    """``src`` without the files of its ``data/`` folders not named in ``keep`` (RECORD rewritten to match;
    every other entry the same bytes). For a package whose data holds several exports of one model, of
    which joygen reads one (silero-vad: 11 MB of wheel, 1.2 MB of it read)."""
    if not keep:
        return src
    out = cache / f"{_sha256(src)}-{'-'.join(sorted(keep))}.whl"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(src) as zin:
        names = [i.filename for i in zin.infolist()]
        kept = {n.rpartition("/")[2] for n in names if _dropped(n, {""}) and n.rpartition("/")[2] in keep}
        if kept != keep:
            raise SystemExit(f"{src.name} has no data file(s) {sorted(keep - kept)} to keep")
        dropped = {n for n in names if _dropped(n, keep)}
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                if info.filename in dropped:
                    continue
                data = zin.read(info)
                if info.filename.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines(keepends=True)
                    data = "".join(line for line in lines if line.split(",", 1)[0] not in dropped).encode()
                zout.writestr(info, data)
    print(f"  {src.name}: kept {sorted(keep)} of its data, dropped {len(dropped)} file(s)", flush=True)
    tmp.replace(out)
    return out


def repack(src: Path, cache: Path) -> Path:
    """``src``, or an LZMA-compressed copy of it (same entries, byte for byte) where that is >= 5 % smaller."""
    if src.stat().st_size < REPACK_MIN_BYTES:
        return src
    sha = _sha256(src)
    packed, keep = cache / f"{sha}.whl", cache / f"{sha}.keep"
    if packed.exists():
        return packed
    if keep.exists():
        return src
    cache.mkdir(parents=True, exist_ok=True)
    print(f"  repacking {src.name} ({src.stat().st_size / 1e6:.1f} MB) with LZMA ...", flush=True)
    tmp = packed.with_suffix(".tmp")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as zout:
        for info in zin.infolist():
            out = zipfile.ZipInfo(info.filename, info.date_time)
            out.external_attr, out.create_system = info.external_attr, info.create_system
            out.compress_type = zipfile.ZIP_LZMA
            zout.writestr(out, zin.read(info))
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(tmp) as b:  # the same files, the same bytes, the same modes
        if [(i.filename, i.external_attr) for i in a.infolist()] != [
            (i.filename, i.external_attr) for i in b.infolist()
        ]:
            raise SystemExit(f"repacking {src.name} changed its entries")
        for info in a.infolist():
            if a.read(info) != b.read(info.filename):
                raise SystemExit(f"repacking {src.name} changed {info.filename}")
    if tmp.stat().st_size > (1 - REPACK_MIN_GAIN) * src.stat().st_size:
        tmp.unlink()
        keep.touch()
        return src
    tmp.replace(packed)
    return packed


def build_wheelhouse(pins: list[Pin], python_version: str, dest: Path, cache_root: Path) -> list[dict]:
    cache = cache_root / f"py{python_version}"
    download(pins, python_version, cache)
    tags = _supported_tags(python_version)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    entries = []
    for pin in pins:
        original = pick_wheel(cache, pin, tags)
        carried = repack(slim(original, data_only(pin), cache_root / "slim"), cache_root / "lzma")
        shutil.copyfile(carried, dest / original.name)
        meta = wheel_metadata(dest / original.name)
        if meta["name"] != pin.name or meta["version"] != pin.version:
            raise SystemExit(f"{original.name} holds {meta['name']} {meta['version']}, not {pin}")
        entries.append(
            {
                **meta,
                "file": original.name,
                "flags": sorted(pin.flags),
                "why": pin.why,
                "pypi_sha256": _sha256(original),
                "pypi_bytes": original.stat().st_size,
                "sha256": _sha256(dest / original.name),
                "bytes": (dest / original.name).stat().st_size,
                "lzma_repacked": carried.parent.name == "lzma",
                "data_only": sorted(data_only(pin)),
            }
        )
    return entries


# -- fixtures ----------------------------------------------------------------------------------------------


def copy_fixtures(golden: Path, data: Path, dest: Path) -> dict:
    import numpy as np

    for sub in ("golden", "data"):
        shutil.rmtree(dest / sub, ignore_errors=True)
    copied = {}
    for rel, keys in GOLDEN_FILES.items():
        src, out = golden / rel, dest / "golden" / rel
        if not src.exists():
            raise SystemExit(f"fixture {src} not found (set --golden or JOYGEN_GOLDEN_DIR)")
        out.parent.mkdir(parents=True, exist_ok=True)
        if keys is None:
            shutil.copyfile(src, out)
        else:
            with np.load(src) as z:
                np.savez_compressed(out, **{k: z[k] for k in keys})
        copied[f"golden/{rel}"] = {"source_sha256": _sha256(src), "arrays": keys, "bytes": out.stat().st_size}
    for name in DATA_FILES:
        src, out = data / name, dest / "data" / name
        if not src.exists():
            raise SystemExit(f"demo file {src} not found (set --data or JOYGEN_DATA_DIR)")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        copied[f"data/{name}"] = {"source_sha256": _sha256(src), "arrays": None, "bytes": out.stat().st_size}
    return copied


# -- sizes -------------------------------------------------------------------------------------------------


def _folder_bytes(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink()) if folder.exists() else 0


def tree_bytes(root: Path = ROOT) -> int:
    """Tracked and untracked-not-ignored files: what a device call sends besides the carried paths."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True, check=True
    ).stdout
    total = 0
    for rel in filter(None, out.decode().split("\0")):
        path = root / rel
        if path.is_file() or path.is_symlink():
            total += path.lstat().st_size
    return total


def _source_commit() -> str | None:
    """HEAD of the tree the wheelhouse was made for, '+dirty' if it has changes (the GPU host gets no .git)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return None
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True)
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def _ignored(path: Path) -> bool:
    probe = path / "x"
    return subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(probe)]).returncode == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python-version", default="3.12", help="the host's Python (default 3.12)")
    ap.add_argument("--dest", type=Path, default=ROOT / ".whl", help="wheelhouse (default .whl)")
    ap.add_argument("--fixtures", type=Path, default=ROOT / ".gpu", help="fixture copies (default .gpu)")
    ap.add_argument(
        "--golden", type=Path, default=Path(os.environ.get("JOYGEN_GOLDEN_DIR", ROOT.parent / "shared" / "golden"))
    )
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("JOYGEN_DATA_DIR", ROOT.parent / "shared" / "data"))
    )
    ap.add_argument("--no-fixtures", action="store_true", help="leave .gpu alone")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "joygen" / "gpu-wheelhouse")
    ap.add_argument("--max-mb", type=float, default=55.0, help="tree + wheelhouse limit in MB (default 55)")
    ap.add_argument("--max-total-mib", type=float, default=62.0, help="tree + .whl + .gpu limit in MiB (default 62)")
    args = ap.parse_args(argv)

    pins = read_pins()
    host = read_host()
    if args.python_version == "3.12" and host.get("python", "").rsplit(".", 1)[0] != "3.12":
        print("note: the host manifest's Python is not 3.12", file=sys.stderr)
    for path in (args.dest, args.fixtures):
        if path.resolve().is_relative_to(ROOT) and not _ignored(path):
            raise SystemExit(f"{path} is not git-ignored: add it to .gitignore first (it must not be committed)")

    entries = build_wheelhouse(pins, args.python_version, args.dest, args.cache)

    # closure: carried wheels first, then the host
    providers = {n: (v, "host") for n, v in host.items()}
    providers.update({e["name"]: (e["version"], "carried") for e in entries})
    flags = {p.name: p.flags for p in pins}
    missing, assumed, met = check_closure(entries, flags, providers, marker_env(args.python_version))
    shadowed = [
        f"{e['name']} {e['version']} (host: {host[e['name']] or 'version not recorded'})"
        for e in entries
        if e["name"] in host
    ]
    manifest = {
        "source_commit": _source_commit(),
        "python_version": args.python_version,
        "platforms": PLATFORMS,
        "wheels": entries,
        "closure": {"missing": missing, "assumed": assumed, "met": met},
        "carried_over_host": shadowed,
    }
    (args.dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"\n{len(entries)} wheels for Python {args.python_version} in {args.dest}:")
    for e in entries:
        if e["data_only"]:
            lz = f" (of its data only {', '.join(e['data_only'])}; PyPI's is {e['pypi_bytes'] / 1e6:.1f} MB)"
        else:
            lz = f" (LZMA repack of {e['pypi_bytes'] / 1e6:.1f} MB)" if e["lzma_repacked"] else ""
        print(f"  {e['bytes'] / 1e6:7.2f} MB  {e['file']}{lz}")
    print(f"closure: {len(met)} requirements met, {len(assumed)} assumed, {len(missing)} missing")
    for line in assumed:
        print(f"  assumed  {line}")
    if shadowed:
        print("carried over the host's own: " + ", ".join(shadowed))

    if not args.no_fixtures:
        copied = copy_fixtures(args.golden, args.data, args.fixtures)
        (args.fixtures / "MANIFEST.json").write_text(json.dumps(copied, indent=2) + "\n")
        print(f"fixtures: {len(copied)} files into {args.fixtures}")

    tree = tree_bytes()
    wheels = _folder_bytes(args.dest)
    fixtures = _folder_bytes(args.fixtures) if args.fixtures.resolve().is_relative_to(ROOT) else 0
    total = tree + wheels + fixtures
    print(
        f"sizes: tree {tree / 1e6:.1f} MB + wheelhouse {wheels / 1e6:.1f} MB = {(tree + wheels) / 1e6:.1f} MB "
        f"(limit {args.max_mb:g} MB); + fixtures {fixtures / 1e6:.1f} MB = {total / 1e6:.1f} MB = "
        f"{total / 2**20:.1f} MiB travelling (limit {args.max_total_mib:g} MiB; the tool's is 64 MiB)"
    )
    problems = []
    if missing:
        problems.append("missing requirements:\n  " + "\n  ".join(missing))
    if tree + wheels > args.max_mb * 1e6:
        problems.append(f"tree + wheelhouse is {(tree + wheels) / 1e6:.1f} MB, over {args.max_mb:g} MB")
    if total > args.max_total_mib * 2**20:
        problems.append(f"everything that travels is {total / 2**20:.1f} MiB, over {args.max_total_mib:g} MiB")
    if problems:
        print("FAILED: " + "\n".join(problems), file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
