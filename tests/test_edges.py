"""The edges a user meets: odd file names, bad output paths, full disks, read-only folders, SIGTERM, cancelling.

Each case ends with a clear one-line message (or the right output), nothing partial at the destination and no
``joygen-*`` work folder left behind. Full disks and read-only folders are real where this machine allows it
(a small tmpfs mounted by root, or a chmod'ed folder for other users); the same code paths are also driven
with injected OS errors, which works everywhere.
"""

import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT

from joygen.errors import Cancelled, OutputError
from joygen.media import probe


def _errors(run: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in run.stderr, run.stderr
    return [ln for ln in run.stderr.splitlines() if ln.startswith("joygen: error:")]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("joygen-") or p.name.endswith(".partial"))


def _env_tmp(tmp_path: Path) -> dict:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {"TMPDIR": str(tmp)}


def _cli(video, audio, weights, output, *extra, env: dict | None = None, cwd=None):
    from helpers import run_cli

    args = ["edit", "--video", str(video), "--audio", str(audio), "--weights", str(weights), "--output", str(output)]
    if env is None:
        return run_cli(*args, *extra, cwd=cwd)
    full = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "joygen", *args, *extra], capture_output=True, text=True, cwd=cwd, env=full, timeout=900
    )


@contextlib.contextmanager
def _tmpfs(path: Path, *options: str):
    """Mount a tmpfs at ``path`` (root with CAP_SYS_ADMIN only), or skip saying why."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# -- file names ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_names_with_colons_work(tmp_path, media, tiny_weights):
    d = tmp_path / "in"
    d.mkdir()
    video, audio, out = d / "clip:1.mp4", d / "voice:2.wav", tmp_path / "out" / "edit:3.mp4"
    video.write_bytes(Path(media["face_noaudio_mp4"]).read_bytes())
    audio.write_bytes(Path(media["tone_wav"]).read_bytes())
    run = _cli(video, audio, tiny_weights, out, "--quiet", "--report", tmp_path / "out" / "r:1.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert probe(out).video is not None and probe(out).audio is not None
    assert (tmp_path / "out" / "r:1.json").is_file()
    assert sorted(p.name for p in d.iterdir()) == ["clip:1.mp4", "voice:2.wav"]  # nothing beside the inputs


# -- the output path -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_output_that_is_a_folder_is_refused_before_any_work(tmp_path, media, tiny_weights):
    folder = tmp_path / "results"
    folder.mkdir()
    run = _cli(media["face_mp4"], media["tone_wav"], tiny_weights, folder, env=_env_tmp(tmp_path))
    errors = _errors(run)
    assert run.returncode == 1 and len(errors) == 1
    assert f"'{folder}' is a folder" in errors[0] and "edited.mp4" in errors[0]
    assert list(folder.iterdir()) == [] and _leftovers(tmp_path) == []


@pytest.mark.slow
def test_an_output_inside_a_file_is_refused(tmp_path, media, tiny_weights):
    (tmp_path / "file").write_text("x")
    run = _cli(media["face_mp4"], media["tone_wav"], tiny_weights, tmp_path / "file" / "o.mp4", env=_env_tmp(tmp_path))
    errors = _errors(run)
    assert run.returncode == 1 and len(errors) == 1 and "is a file, not a folder" in errors[0]


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "read-only"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    with _tmpfs(folder, "ro", "size=1m") as mounted:
        yield mounted


@pytest.mark.slow
def test_a_read_only_output_folder_is_one_message(tmp_path, media, tiny_weights, read_only_folder):
    out = read_only_folder / "o.mp4"
    run = _cli(media["face_mp4"], media["tone_wav"], tiny_weights, out, env=_env_tmp(tmp_path))
    errors = _errors(run)
    assert run.returncode == 1 and len(errors) == 1, run.stderr
    assert str(out) in errors[0] and ("permission denied" in errors[0] or "read-only" in errors[0])
    assert not out.exists() and _leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_full_disk_at_the_output_leaves_nothing_partial(tmp_path, media, tiny_weights):
    with _tmpfs(tmp_path / "tiny-disk", "size=16k") as disk:
        out = disk / "o.mp4"
        run = _cli(media["face_mp4"], media["tone_wav"], tiny_weights, out, "--quiet", env=_env_tmp(tmp_path))
        errors = _errors(run)
        assert run.returncode == 1 and len(errors) == 1, run.stderr
        assert str(out) in errors[0] and "no space left" in errors[0]
        assert list(disk.iterdir()) == []  # neither the output nor a temporary copy of it
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_full_disk_in_the_work_folder_says_so(tmp_path, media, tiny_weights):
    with _tmpfs(tmp_path / "tiny-tmp", "size=16k") as tmp:
        out = tmp_path / "out" / "o.mp4"
        run = _cli(media["face_mp4"], media["tone_wav"], tiny_weights, out, "--quiet", env={"TMPDIR": str(tmp)})
        errors = _errors(run)
        assert run.returncode == 1 and len(errors) == 1, run.stderr
        assert "no space left" in errors[0] and "work folder" in errors[0]
        assert _leftovers(tmp) == [] and not out.exists()


def test_an_output_that_cannot_be_written_keeps_the_destination_intact(tmp_path, monkeypatch):
    # The same path as a full disk, with the error injected: works without root.
    from joygen import files

    made, dest = tmp_path / "work" / "edited.mp4", tmp_path / "out" / "o.mp4"
    made.parent.mkdir()
    made.write_bytes(b"x" * 1000)
    dest.parent.mkdir()
    dest.write_bytes(b"the previous result")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "rename", lambda *a: (_ for _ in ()).throw(OSError(errno.EXDEV, "cross-device")))
    monkeypatch.setattr(files.shutil, "copyfile", full)
    with pytest.raises(OutputError, match=f"could not write the output '{dest}': no space left"):
        files.place_file(made, dest)
    assert dest.read_bytes() == b"the previous result"  # untouched
    assert sorted(p.name for p in dest.parent.iterdir()) == ["o.mp4"]  # no temporary copy left


def test_an_encoder_that_runs_out_of_space_says_so(tmp_path):
    from joygen.errors import FFmpegError
    from joygen.video import VideoWriter

    writer = VideoWriter(tmp_path / "x.mp4", 16, 16, audio_path=None)
    message = writer._failure("encoding 'x.mp4' failed", "Error writing trailer: No space left on device", 228)
    assert "no space left" in message and str(tmp_path) in message and "--work-dir" in message
    writer.abort()
    with pytest.raises(FFmpegError):
        raise FFmpegError(message)


# -- signals and cancelling --------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_cleans_up_like_ctrl_c(tmp_path, media, tiny_weights):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **_env_tmp(tmp_path)}
    long_voice = tmp_path / "voice.wav"
    from helpers import ffmpeg

    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:sample_rate=16000:duration=6", str(long_voice))
    out = tmp_path / "out" / "o.mp4"
    args = ["edit", "--video", str(media["face_noaudio_mp4"]), "--audio", str(long_voice), "--quiet"]
    args += ["--weights", str(tiny_weights), "--output", str(out), "--batch-size", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "joygen", *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900  # a guard against a hang only
    work = tmp_path / "tmp"
    while not any(work.glob("joygen-*/edited.mp4")):  # mid-run: the encoder has started
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143 and "joygen: terminated" in stderr and "Traceback" not in stderr, stderr
    assert _leftovers(tmp_path) == [] and not out.exists()


def test_a_cancelled_run_stops_within_one_batch(tiny_pipeline, media, tmp_path):
    stop = threading.Event()
    generated = []
    original = tiny_pipeline.editor.generate

    def counting(*args, **kwargs):
        generated.append(1)
        stop.set()  # cancel while the first batch is in flight
        return original(*args, **kwargs)

    tiny_pipeline.editor.generate = counting
    work = tmp_path / "work"
    try:
        cfg = tiny_pipeline.config.with_options(batch_size=4, cache=False)
        with pytest.raises(Cancelled):
            tiny_pipeline(media["face_noaudio_mp4"], media["tone_wav"], tmp_path / "o.mp4", config=cfg, cancel=stop)
    finally:
        del tiny_pipeline.editor.generate
    assert len(generated) == 1  # 26 frames would be 7 batches
    assert not (tmp_path / "o.mp4").exists() and not work.exists()


@pytest.mark.slow
def test_cancelling_an_app_job_stops_the_edit(tiny_pipeline, media, tmp_path, monkeypatch):
    from webapp import server
    from webapp.edit import run_edit

    calls = []
    original = tiny_pipeline.editor.generate
    monkeypatch.setattr(tiny_pipeline.editor, "generate", lambda *a, **k: calls.append(1) or original(*a, **k))
    monkeypatch.setattr(
        server, "STATE", server.AppState(pipeline=tiny_pipeline, depth=True, max_seconds=60, batch_size=2)
    )
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    long_voice = tmp_path / "voice.wav"
    from helpers import ffmpeg

    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:sample_rate=16000:duration=4", str(long_voice))
    job = run_edit(str(media["face_noaudio_mp4"]), str(long_voice), {}, {})
    for update in job:
        if "plot" in update:  # the lip trajectory: stage 1 is done, the frames are being edited
            break
    job.close()  # what Gradio does to a cancelled job
    done = len(calls)
    time.sleep(1.0)
    assert len(calls) == done  # nothing computes after the job was closed
    assert done <= 2  # at most the batch in flight when it was cancelled (100 frames would be 50 batches)
