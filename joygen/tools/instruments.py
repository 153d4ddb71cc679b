"""The benchmark's instruments: peak host memory, GPU utilisation and memory, the device's description."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time

import torch


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


class GpuSampler:
    """Samples the GPU's utilisation (percent of time a kernel ran) and used memory every ``period`` seconds
    while active: through NVML (``pynvml``) where it imports, else ``nvidia-smi``; on a CPU it does nothing.

    NVML numbers the GPUs in PCI order and CUDA fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; on a
    one-GPU machine both are 0.
    """

    def __init__(self, device: torch.device, period: float = 0.1):
        self.device, self.period = device, period
        self.samples: list[tuple[float, float]] = []  # (utilisation %, used MiB)
        self.source: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None

    def _index(self) -> int:
        return self.device.index if self.device.index is not None else torch.cuda.current_device()

    def _nvml(self):
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(self._index())
        try:
            while not self._stop.is_set():
                util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
                used = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
                self.samples.append((float(util), float(used)))
                self._stop.wait(self.period)
        finally:
            pynvml.nvmlShutdown()

    def _smi(self):
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        cmd += ["-i", str(self._index()), "-lms", str(max(int(self.period * 1000), 100))]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self._proc.stdout:
            try:
                util, used = (float(v) for v in line.split(","))
            except ValueError:
                continue
            self.samples.append((util, used))

    def __enter__(self):
        if self.device.type != "cuda":
            return self
        try:
            import pynvml  # noqa: F401

            self.source, target = "nvml", self._nvml
        except ImportError:
            import shutil

            if shutil.which("nvidia-smi") is None:
                return self
            self.source, target = "nvidia-smi", self._smi
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict | None:
        if self.source is None:
            return None
        util = [u for u, _ in self.samples]
        return {
            "source": self.source,
            "samples": len(util),
            "period_s": self.period,
            "mean_util_pct": round(sum(util) / len(util), 1) if util else None,
            "max_util_pct": max(util) if util else None,
            "max_used_mib": max(m for _, m in self.samples) if self.samples else None,
        }


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gpu_memory(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"peak_gpu_gib": None, "peak_gpu_reserved_gib": None}
    return {
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3),
        "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved(device) / 2**30, 3),
    }


def device_info(dev: torch.device) -> dict:
    """What the figures were measured on: the GPU, its driver, the CUDA build and the math settings."""
    if dev.type != "cuda":
        return {"name": f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"}
    props = torch.cuda.get_device_properties(dev)
    info = {
        "name": torch.cuda.get_device_name(dev),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(dev))),
        "multiprocessors": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit", "--format=csv,noheader"]
        info["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    return info
