"""The GPU run's tooling, checked without a GPU: the carry list (scripts/gpu-wheels.txt) against our pins, its
closure check, scripts/gpu_run.sh's syntax and the benchmark's GPU sampler. Fast, offline."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from gpu_report import APP_ONLY, _pins_file  # noqa: E402
from gpu_wheelhouse import Pin, check_closure, data_only, marker_env, read_host, read_pins, slim  # noqa: E402


def _ours() -> dict[str, str]:
    pins = {}
    for name in ("requirements.txt", "requirements-nodeps.txt", "requirements-dev.txt"):
        pins |= _pins_file(ROOT / name)
    return pins


def test_carried_pins_agree_with_requirements():
    ours = _ours()
    pins = read_pins()
    assert pins, "scripts/gpu-wheels.txt lists nothing"
    for pin in pins:
        assert pin.why, f"{pin}: say why it is carried"
        if pin.name not in ours:
            continue  # a dependency of one of ours, not pinned there
        if "not-our-pin" in pin.flags:
            assert pin.version != ours[pin.name], f"{pin}: marked [not-our-pin] but equals requirements"
        else:
            assert pin.version == ours[pin.name], f"{pin}: requirements pin {ours[pin.name]}"
    # facenet-pytorch is installed without dependencies here as in requirements-nodeps.txt
    nodeps = _pins_file(ROOT / "requirements-nodeps.txt")
    assert {p.name for p in pins if "no-deps" in p.flags} == set(nodeps)


def test_every_runtime_requirement_is_carried_or_on_the_host():
    carried = {p.name for p in read_pins()}
    host = read_host()
    runtime = _pins_file(ROOT / "requirements.txt") | _pins_file(ROOT / "requirements-nodeps.txt")
    unmet = sorted(n for n in runtime if n not in APP_ONLY and n not in carried and n not in host)
    assert not unmet, f"neither carried nor on the GPU host: {unmet}"
    assert "torch" in host and host["python"].startswith("3.12")


def test_closure_check_reads_markers_and_versions():
    env = marker_env("3.12")
    metas = [
        {
            "name": "a",
            "version": "1.0",
            "requires_dist": [
                "b>=2",  # carried, fits
                "c<1",  # on the host at 1.5: does not fit
                "d",  # on the host, version not recorded
                "e; python_version >= '3.13'",  # not on 3.12
                "f; extra == 'test'",  # an extra
                "g",  # nowhere
            ],
        },
        {"name": "z", "version": "1.0", "requires_dist": ["nothing-anywhere"]},
    ]
    providers = {"b": ("2.1", "carried"), "c": ("1.5", "host"), "d": (None, "host")}
    missing, assumed, met = check_closure(metas, {"z": {"no-deps"}}, providers, env)
    assert [m.split(":")[0] for m in missing] == ["a 1.0 needs c<1", "a 1.0 needs g"]
    assert len(assumed) == 1 and assumed[0].startswith("a 1.0 needs d")
    assert len(met) == 1 and met[0].startswith("a 1.0 needs b>=2")
    on_313 = check_closure(metas[:1], {}, providers, marker_env("3.13"))[0]
    assert [m.split(" ")[3].rstrip(";:") for m in on_313] == ["c<1", "e", "g"]


def test_pin_lines_are_checked(tmp_path):
    bad = tmp_path / "w.txt"
    for text in ("torch==2.13.0  # no", "x==1 [odd]  # flag", "x  # no version", "x==1 # a\nx==2 # b"):
        bad.write_text(text + "\n")
        with pytest.raises(SystemExit):
            read_pins(bad)
    bad.write_text("Foo_Bar==1.0 [no-deps] # why\n")
    (pin,) = read_pins(bad)
    assert isinstance(pin, Pin) and pin.name == "foo-bar" and pin.flags == {"no-deps"}


def test_data_only_keeps_the_named_file_and_a_matching_record(tmp_path):
    import zipfile

    src = tmp_path / "pkg-1.0-py3-none-any.whl"
    files = {
        "pkg/__init__.py": b"x = 1\n",
        "pkg/data/__init__.py": b"",
        "pkg/data/a.onnx": b"A" * 100,
        "pkg/data/b.onnx": b"B" * 100,
    }
    record = "".join(f"{n},sha256=0,{len(b)}\n" for n, b in files.items()) + "pkg-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(src, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("pkg-1.0.dist-info/RECORD", record)
    pin = Pin("pkg", "1.0", {"data-only=a.onnx"}, "test")
    assert data_only(pin) == {"a.onnx"}
    out = slim(src, data_only(pin), tmp_path / "cache")
    with zipfile.ZipFile(out) as z:
        kept = ["pkg-1.0.dist-info/RECORD", "pkg/__init__.py", "pkg/data/__init__.py", "pkg/data/a.onnx"]
        assert sorted(z.namelist()) == kept
        assert z.read("pkg/data/a.onnx") == files["pkg/data/a.onnx"]  # byte for byte
        assert "pkg/data/b.onnx" not in z.read("pkg-1.0.dist-info/RECORD").decode()
    assert slim(src, set(), tmp_path / "cache") == src  # no flag: the wheel as PyPI served it
    with pytest.raises(SystemExit, match="c.onnx"):
        slim(src, {"c.onnx"}, tmp_path / "cache")


def test_gpu_run_script_parses():
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_run.sh")], check=True)


def test_gpu_sampler_reads_nvml(monkeypatch):
    import types

    import torch

    from joygen.tools.instruments import GpuSampler

    calls = []
    fake = types.SimpleNamespace(
        nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetHandleByIndex=lambda i: calls.append(f"handle {i}") or "h",
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=40 + 20 * (len(calls) % 2)),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=3 * 2**30),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with GpuSampler(torch.device("cuda", 0), period=0.01) as util:
        import time

        time.sleep(0.2)
    s = util.summary()
    assert s["source"] == "nvml" and s["samples"] >= 3 and s["max_used_mib"] == 3072
    assert 40 <= s["mean_util_pct"] <= 60 and calls[:2] == ["init", "handle 0"] and calls[-1] == "shutdown"
    with GpuSampler(torch.device("cpu")) as util:
        pass
    assert util.summary() is None


def test_gpu_sampler_falls_back_to_nvidia_smi(monkeypatch, tmp_path):
    import torch

    from joygen.tools.instruments import GpuSampler

    smi = tmp_path / "nvidia-smi"  # prints what --query-gpu ... -lms would, then keeps running
    smi.write_text("#!/bin/sh\necho '35, 1000'\necho '65, 2000'\nexec sleep 30\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    with GpuSampler(torch.device("cuda", 0)) as util:
        import time

        time.sleep(0.5)
    s = util.summary()
    assert s["source"] == "nvidia-smi" and s["samples"] == 2 and s["mean_util_pct"] == 50 and s["max_used_mib"] == 2000
