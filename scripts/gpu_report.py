#!/usr/bin/env python3
"""The Python half of ``scripts/gpu_run.sh``: install fallback, environment check, result collection.

    gpu_report.py unpack WHEELHOUSE SITE          install wheels without pip (pip's --target does the same)
    gpu_report.py env --wheels .whl --out env.json       what the run ran on; exit 1 if a requirement is unmet
    gpu_report.py tests --junit X --metrics Y --out tests.json     per test outcome and measured figures
    gpu_report.py summary --steps S --results DIR --out summary.json   every step's status and the headline figures

Only the standard library and ``packaging`` (both on the GPU host) are needed before the environment check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_wheelhouse import PINS, ROOT, needed, read_pins  # noqa: E402

# distribution -> module, for what joygen and tests/test_gpu.py import
IMPORTS = {
    "diffusers": "diffusers",
    "transformers": "transformers",
    "huggingface-hub": "huggingface_hub",
    "safetensors": "safetensors",
    "accelerate": "accelerate",
    "numpy": "numpy",
    "scipy": "scipy",
    "pillow": "PIL",
    "opencv-python-headless": "cv2",
    "imageio-ffmpeg": "imageio_ffmpeg",
    "librosa": "librosa",
    "soundfile": "soundfile",
    "praat-parselmouth": "parselmouth",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "pyyaml": "yaml",
    "tqdm": "tqdm",
    "pytest": "pytest",
    "pytest-timeout": "pytest_timeout",
    "scikit-image": "skimage",
}
APP_ONLY = {"torch", "gradio", "gradio-client", "spaces", "playwright", "ruff"}  # not wanted on the GPU host


def _run(cmd: list[str], timeout: float = 30) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return (proc.stdout + proc.stderr).strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}" if not isinstance(exc, FileNotFoundError) else None


def _pins_file(path: Path) -> dict[str, str]:
    from packaging.utils import canonicalize_name

    out = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[canonicalize_name(name)] = version.strip()
    return out


# -- unpack ------------------------------------------------------------------------------------------------


def cmd_unpack(args) -> int:
    site = Path(args.site)
    site.mkdir(parents=True, exist_ok=True)
    for whl in sorted(Path(args.wheelhouse).glob("*.whl")):
        with zipfile.ZipFile(whl) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if parts[0].endswith(".data"):
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        continue
                    parts = parts[2:]
                if info.is_dir():
                    continue
                target = site.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
                mode = info.external_attr >> 16
                if mode & 0o111:
                    target.chmod(0o755)
        print(f"unpacked {whl.name}")
    return 0


# -- env ---------------------------------------------------------------------------------------------------


def _torch_info() -> dict:
    import torch

    info = {"version": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            multiprocessors=props.multi_processor_count,
            memory_gib=round(props.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
            device_count=torch.cuda.device_count(),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    info["threads"] = torch.get_num_threads()
    return info


def _smoke() -> dict:
    """Run the few things that only fail at run time: numba under librosa, libsndfile, Praat, ffmpeg, MTCNN."""
    checks = {}

    def check(name, fn):
        start = time.perf_counter()
        try:
            checks[name] = {"ok": True, "value": fn()}
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]}
        checks[name]["seconds"] = round(time.perf_counter() - start, 2)

    def mel():
        from joygen.editor.whisper import _mel_filters

        return list(_mel_filters().shape)

    def praat():
        import numpy as np
        import parselmouth

        t = np.arange(16000) / 16000
        pitch = parselmouth.Sound(np.sin(2 * np.pi * 200 * t), 16000).to_pitch_ac(time_step=0.02)
        return round(float(np.nanmedian(pitch.selected_array["frequency"])), 1)

    def sndfile():
        import soundfile

        return soundfile.__libsndfile_version__

    def ffmpeg():
        from joygen.media import ffmpeg_exe, ffmpeg_version

        return {"exe": ffmpeg_exe(), "version": ffmpeg_version()}

    def mtcnn():
        from joygen.weights.locator import WeightsLocator

        found = WeightsLocator(use_public=True).find("mtcnn")
        return str(found.folder) if found else None

    def versions():
        from joygen.report import versions

        return versions()

    for name, fn in [
        ("librosa_mel_filters", mel),
        ("praat_pitch_of_200hz", praat),
        ("libsndfile", sndfile),
        ("ffmpeg", ffmpeg),
        ("mtcnn_weights", mtcnn),
        ("joygen_versions", versions),
    ]:
        check(name, fn)
    if checks["mtcnn_weights"].get("value") is None and checks["mtcnn_weights"]["ok"]:
        checks["mtcnn_weights"] = {"ok": False, "error": "facenet-pytorch's MTCNN weights not found"}
    return checks


def cmd_env(args) -> int:
    import importlib
    import importlib.metadata as md

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    problems: list[str] = []
    site = Path(args.site).resolve() if args.site else None
    env = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": sys.version,
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "pythonpath": os.environ.get("PYTHONPATH"),
        "nvidia_smi": _run(["nvidia-smi"]),
        "nvidia_smi_query": _run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit", "--format=csv"]
        ),
        "system_ffmpeg": _run(["sh", "-c", "command -v ffmpeg && ffmpeg -version | head -1"]),
    }
    try:
        env["torch"] = _torch_info()
    except Exception as exc:  # noqa: BLE001
        env["torch"] = {"error": f"{type(exc).__name__}: {exc}"}
        problems.append(f"torch: {env['torch']['error']}")

    # the carried wheels: installed, at the pinned version, from the wheelhouse's site folder
    manifest_path = Path(args.wheels) / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    carried = {}
    for pin in read_pins(PINS):
        row = {"pinned": pin.version}
        try:
            dist = md.distribution(pin.name)
            row["installed"] = dist.version
            row["location"] = str(Path(dist.locate_file("")).resolve())
            row["ok"] = dist.version == pin.version and (site is None or row["location"] == str(site))
        except md.PackageNotFoundError:
            row["installed"], row["ok"] = None, False
        if not row["ok"]:
            problems.append(f"carried {pin.name}=={pin.version}: found {row.get('installed')} at {row.get('location')}")
        carried[pin.name] = row
    env["carried"] = carried
    env["wheelhouse_manifest"] = (
        {k: manifest.get(k) for k in ("source_commit", "python_version", "carried_over_host")}
        | {"closure_assumed": manifest["closure"]["assumed"]}
        if manifest
        else None
    )
    env["source_commit"] = (manifest or {}).get("source_commit")  # the host gets no .git

    # their requirements against what is really installed here
    marker_env = default_environment()
    closure = []
    for pin in read_pins(PINS):
        if "no-deps" in pin.flags or carried[pin.name]["installed"] is None:
            continue
        for req in needed(md.distribution(pin.name).requires or [], marker_env):
            try:
                have = md.version(req.name)
                ok = req.specifier.contains(Version(have), prereleases=True)
            except md.PackageNotFoundError:
                have, ok = None, False
            closure.append({"by": pin.name, "requires": str(req), "installed": have, "ok": ok})
            if not ok:
                problems.append(f"{pin.name} needs {req}: installed {have}")
    env["closure"] = closure

    # joygen's own requirements: pinned version, installed version, pyproject's range, importable
    import tomllib

    ours = _pins_file(ROOT / "requirements.txt") | _pins_file(ROOT / "requirements-nodeps.txt")
    ours |= {k: v for k, v in _pins_file(ROOT / "requirements-dev.txt").items() if k in IMPORTS}
    ranges = {}
    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(text)
        ranges[canonicalize_name(req.name)] = req
    packages = {}
    for name, pinned in sorted(ours.items()):
        if name in APP_ONLY:
            continue
        row = {"ours": pinned}
        try:
            row["installed"] = md.version(name)
        except md.PackageNotFoundError:
            row["installed"] = None
        row["same_as_ours"] = row["installed"] == pinned
        if name in ranges:
            row["pyproject"] = str(ranges[name].specifier) or "any"
            row["in_pyproject_range"] = row["installed"] is not None and ranges[name].specifier.contains(
                Version(row["installed"]), prereleases=True
            )
        module = IMPORTS.get(name)
        if module:
            try:
                importlib.import_module(module)
                row["import"] = "ok"
            except Exception as exc:  # noqa: BLE001
                row["import"] = f"{type(exc).__name__}: {exc}"[:500]
        if row["installed"] is None:
            problems.append(f"{name}: not installed")
        elif row.get("in_pyproject_range") is False:
            problems.append(f"{name} {row['installed']}: outside pyproject's {row['pyproject']}")
        if row.get("import", "ok") != "ok":
            problems.append(f"import {module}: {row['import']}")
        packages[name] = row
    env["packages"] = packages

    try:
        import joygen

        env["joygen"] = {"file": joygen.__file__, "version": joygen.__version__}
        env["smoke"] = _smoke()
        problems += [f"smoke {k}: {v['error']}" for k, v in env["smoke"].items() if not v["ok"]]
    except Exception as exc:  # noqa: BLE001
        problems.append(f"import joygen: {type(exc).__name__}: {exc}")
    env["problems"] = problems
    env["ok"] = not problems
    Path(args.out).write_text(json.dumps(env, indent=2, default=str) + "\n")
    t = env.get("torch", {})
    print(
        f"env: python {sys.version.split()[0]}, torch {t.get('version')} (CUDA {t.get('cuda_build')}), "
        f"device {t.get('device', 'none')}; {len(carried)} carried, {len(closure)} requirements checked"
    )
    for p in problems:
        print(f"  PROBLEM {p}")
    print("env: ok" if not problems else f"env: {len(problems)} problem(s)")
    return 0 if not problems else 1


# -- tests -------------------------------------------------------------------------------------------------


def cmd_tests(args) -> int:
    import xml.etree.ElementTree as ET

    tests, counts = [], {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    junit = Path(args.junit)
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            row = {
                "test": f"{case.get('classname', '')}::{case.get('name')}",
                "seconds": float(case.get("time", 0)),
                "outcome": "passed",
            }
            for tag in ("failure", "error", "skipped"):
                el = case.find(tag)
                if el is not None:
                    row["outcome"] = "failed" if tag == "failure" else tag
                    row["message"] = (el.get("message") or el.text or "")[:2000]
            props = case.find("properties")
            if props is not None:
                row["measured"] = {p.get("name"): float(p.get("value")) for p in props.iter("property")}
            counts[row["outcome"]] += 1
            tests.append(row)
    metrics = []
    if args.metrics and Path(args.metrics).exists():
        metrics = [json.loads(line) for line in Path(args.metrics).read_text().splitlines() if line.strip()]
    out = {
        "pytest_exit_code": args.rc,
        "junit_found": junit.exists(),
        "counts": counts,
        "tests": tests,
        "metrics": metrics,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"tests: {counts} (pytest exit {args.rc}, junit {'found' if junit.exists() else 'MISSING'})")
    for m in metrics:
        limit = f" (limit {m['limit']:g})" if m.get("limit") is not None else ""
        print(f"  {m['test'].split('::')[-1]:52s} {m['name']:36s} {m['value']:.4g}{limit}")
    return 0


# -- summary -----------------------------------------------------------------------------------------------


def _bench_headline(path: Path) -> dict:
    try:
        r = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"file": path.name, "error": f"unreadable: {exc}"}
    runs = r.get("runs") or {}
    g = r.get("generator") or {}
    head = {
        "file": path.name,
        "complete": r.get("complete"),
        "phase": r.get("phase"),
        "error": r.get("error"),
        "device": r.get("device"),
        "dtype": r.get("dtype"),
        "size": r.get("size"),
        "frames": (r.get("clip") or {}).get("frames"),
        "model_load_seconds": r.get("model_load_seconds"),
        "generator_fps": g.get("fps"),
        "generator_peak_gpu_gib": g.get("peak_gpu_gib"),
    }
    for name, key in (("first run", "first_run"), ("cached video, new voice", "cached_video_new_voice")):
        if name in runs:
            run = runs[name]
            util = run.get("gpu_util") or {}
            head[key] = {
                "fps": run["fps"],
                "seconds": run["seconds"],
                "peak_gpu_gib": run.get("peak_gpu_gib"),
                "mean_gpu_util_pct": util.get("mean_util_pct"),
                "top_stages_s": dict(
                    sorted(((k, v["seconds"]) for k, v in run["stages"].items()), key=lambda kv: -kv[1])[:5]
                ),
            }
    return head


def cmd_summary(args) -> int:
    results = Path(args.results)
    steps = []
    if Path(args.steps).exists():
        for line in Path(args.steps).read_text().splitlines():
            name, rc, seconds, cap, status = line.split("\t")
            steps.append(
                {"step": name, "exit_code": int(rc), "seconds": int(seconds), "limit_s": int(cap), "status": status}
            )
    summary = {"steps": steps, "bench": [_bench_headline(p) for p in sorted(results.glob("bench-*.json"))]}
    tests = results / "tests.json"
    if tests.exists():
        t = json.loads(tests.read_text())
        summary["tests"] = {
            "counts": t["counts"],
            "not_passed": [
                {k: r.get(k) for k in ("test", "outcome", "message")} for r in t["tests"] if r["outcome"] != "passed"
            ],
            "measured": {f"{m['test'].split('::')[-1]} {m['name']}": m["value"] for m in t["metrics"]},
        }
    env = results / "env.json"
    if env.exists():
        e = json.loads(env.read_text())
        summary["env"] = {"ok": e.get("ok"), "problems": e.get("problems"), "torch": e.get("torch")}
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print("\n== summary ==")
    for s in steps:
        print(f"  {s['step']:22s} {s['status']:10s} exit {s['exit_code']:3d}  {s['seconds']:4d} s of {s['limit_s']} s")
    for b in summary["bench"]:
        fr, ca = b.get("first_run") or {}, b.get("cached_video_new_voice") or {}
        print(
            f"  {b['file']:28s} {b.get('dtype')}: first run {fr.get('fps')} fps, cached video {ca.get('fps')} fps, "
            f"generator {b.get('generator_fps')} fps, peak GPU {fr.get('peak_gpu_gib') or b.get('generator_peak_gpu_gib')} GiB"
            f"{'' if b.get('complete') else ' (INCOMPLETE at ' + str(b.get('phase')) + ')'}"
        )
    if "tests" in summary:
        print(f"  tests: {summary['tests']['counts']}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("unpack")
    p.add_argument("wheelhouse")
    p.add_argument("site")
    p = sub.add_parser("env")
    p.add_argument("--wheels", default=str(ROOT / ".whl"))
    p.add_argument("--site", help="where the carried wheels must be installed (checked)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("tests")
    p.add_argument("--junit", required=True)
    p.add_argument("--metrics")
    p.add_argument("--rc", type=int)
    p.add_argument("--out", required=True)
    p = sub.add_parser("summary")
    p.add_argument("--steps", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    return {"unpack": cmd_unpack, "env": cmd_env, "tests": cmd_tests, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
