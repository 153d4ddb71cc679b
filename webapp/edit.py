"""The edit: `run_edit` (the pipeline in a worker thread, what the page shows as it becomes known), the page's
Edit button (`edit_page`) and the named ``/edit`` API (`edit`)."""

from __future__ import annotations

import json
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import gradio as gr

from joygen.config import option_fields
from joygen.errors import JoyGenError, WeightsError

from . import server
from .parts import (
    FACE_TAB_NAMES,
    OPTION_ORDER,
    VOICE_TAB_NAMES,
    config_options,
    message,
    progress_html,
    shown_name,
    upload_names,
)
from .server import gpu

TICK_S = 1.0  # the progress line is refreshed at least this often (elapsed time) while an edit runs
PAGE_EDIT_OUTPUTS = [
    "progress",
    "check_line",
    "check",
    "live",
    "side",
    "video",
    "summary",
    "plot",
    "depth",
    "timings",
    "report",
]
API_EDIT_OUTPUTS = ["video", "side", "depth", "plot", "timings", "report", "summary"]


@gpu()
def run_edit(face: str, voice: str, names: dict[str, str], options: dict, used: str = "") -> Iterator[dict]:
    """Edit ``face`` (a video or a photo) to say ``voice``; yields what the page shows, as it becomes known.

    ``names`` maps the server paths of the uploads to the names they were uploaded with (the report and the
    messages use those); ``used`` is the line saying which files were used (default: their names).

    Each item is a dict of some of: ``progress`` (html), ``plot`` (image), ``depth`` (captioned images),
    ``live`` (a captioned image of the latest edited frame), and at the end ``video``, ``side``, ``timings``,
    ``report`` (paths and rows), ``summary`` (text). Failures are raised (`JoyGenError` for what a user can fix).
    """
    from joygen.report import TINY_WARNING, public_report
    from joygen.views import RunClock, depth_panels, frame_preview, lip_plot, summary_line, timing_rows

    pipe = server.STATE.pipeline
    if pipe is None:
        raise WeightsError("the editor's weights are missing; see the panel at the top of the page")
    config = pipe.config.with_options(
        **{**options, "use_depth": bool(options.get("use_depth", True)) and pipe.has_depth},
        batch_size=server.STATE.batch_size,
    )
    work = Path(tempfile.mkdtemp(prefix="joygen-app-"))
    events: queue.Queue = queue.Queue()
    stop = threading.Event()  # set when the page cancels the job: the run stops before its next batch
    clock = RunClock()
    used = used or f"Face: {names.get(face, shown_name(face))} · voice: {names.get(voice, shown_name(voice))}"

    def run():
        try:
            result = pipe(
                face,
                voice,
                work / "edited.mp4",
                config=config,
                work_dir=work / "scratch",
                report=work / "report.json",
                side_by_side=work / "side_by_side.mp4",
                progress=lambda stage, done, total: events.put(("progress", (stage, done, total))),
                preview=lambda kind, data: events.put((kind, data)),
                cancel=stop,
            )
            events.put(("done", result))
        except BaseException as exc:  # noqa: BLE001 - handed to the page as a readable message
            events.put(("error", exc))

    def progress() -> str:
        return progress_html(clock.text(), used, clock.fraction)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        yield {"progress": progress()}
        while True:
            try:
                kind, data = events.get(timeout=TICK_S)
            except queue.Empty:
                yield {"progress": progress()}  # the elapsed time moves on
                continue
            if kind == "progress":
                clock.update(*data)
                yield {"progress": progress()}
            elif kind == "trajectory":
                yield {"plot": lip_plot(data), "progress": progress()}
            elif kind == "depth":
                yield {"depth": depth_panels(data)}
            elif kind == "frame":
                yield {"live": frame_preview(data)}
            elif kind == "error":
                raise data
            elif kind == "done":
                report = public_report(data.report, names)
                report_path = work / "joygen-report.json"
                report_path.write_text(json.dumps(report, indent=2) + "\n")
                summary = summary_line(data)
                notes = [w for w in data.warnings if w != TINY_WARNING]  # the page's banner says that one
                yield {
                    "progress": progress_html(
                        f"Done in {clock.elapsed:.0f} s: the results are below.", used, state="done"
                    ),
                    "video": str(data.video),
                    "side": str(work / "side_by_side.mp4"),
                    "plot": lip_plot(data.trajectory),
                    "depth": depth_panels(data.depth_previews),
                    "timings": timing_rows(data),
                    "report": str(report_path),
                    "summary": " ".join([f"**Done.** {used}.", summary, *(f"Note: {w}." for w in notes)]),
                }
                return
    finally:
        stop.set()  # a cancelled job closes this generator: the worker stops before its next batch
        worker.join()
        shutil.rmtree(work, ignore_errors=True)  # Gradio has copied what it shows into its own cache


def _edit_inputs(face_tab: str, video, photo, voice_tab: str, audio, voice_file) -> tuple[str, str, str]:
    """The face and the voice the selected tabs hold, and the line that says so; `JoyGenError` if one is empty."""
    face = photo if face_tab == "photo" else video
    voice = voice_file if voice_tab == "file" else audio
    if not face:
        raise JoyGenError(f"the {FACE_TAB_NAMES[face_tab]} tab is selected but holds nothing: put a face there")
    if not voice:
        raise JoyGenError(f"the {VOICE_TAB_NAMES[voice_tab]} tab is selected but holds nothing: put a voice there")
    used = (
        f"Face: {shown_name(face)} ({FACE_TAB_NAMES[face_tab]} tab) · "
        f"voice: {shown_name(voice)} ({VOICE_TAB_NAMES[voice_tab]} tab)"
    )
    return face, voice, used


def edit_page(face_tab, video, photo, voice_tab, audio, voice_file, *option_values):
    """The page's Edit button: the selected tabs decide; failures go to the progress element, in full."""
    names = upload_names(video, photo, audio, voice_file)
    start = {
        "progress": progress_html("Starting the edit ..."),
        "check_line": "",
        "check": gr.update(visible=False),
        **dict.fromkeys(["live", "side", "video", "summary", "plot", "depth", "timings", "report"]),
    }
    yield _page(start)
    try:
        face, voice, used = _edit_inputs(face_tab, video, photo, voice_tab, audio, voice_file)
        options = config_options(dict(zip(OPTION_ORDER, option_values)))
        with closing(run_edit(face, voice, names, options, used)) as updates:
            for update in updates:
                if "side" in update:  # the end: the side-by-side video takes the live preview's place
                    update = {**update, "live": gr.update(visible=False)}
                yield _page(update)
    except Exception as exc:  # noqa: BLE001 - every failure is said in the progress element, in full
        failed = {
            "progress": progress_html("The edit stopped: " + message(exc, names), state="failed"),
            "live": gr.update(visible=False),
        }
        yield _page(failed)


def _page(update: dict) -> tuple:
    """The page's outputs from a dict of values: each output shows once it holds something, hides while empty
    (an explicit ``gr.update`` passes as it is; outputs not named are left alone)."""
    out = []
    for key in PAGE_EDIT_OUTPUTS:
        value = update.get(key, gr.skip())
        if key == "live" and isinstance(value, tuple):  # (image, caption): the caption becomes the label
            value = gr.update(value=value[0], label=value[1], visible=True)
        elif key != "progress" and not isinstance(value, dict):
            value = gr.update(value=value, visible=value is not None and not (isinstance(value, str) and not value))
        out.append(value)
    return tuple(out)


def edit(
    video: str,
    audio: str,
    seed: int,
    temperature: float,
    mouth_amp: float,
    use_depth: bool,
    landmark_box: bool,
    upper_boundary_ratio: float,
    expand: float,
    feather: float,
    crf: int,
    silence_mode: str = option_fields()["silence_mode"].default,
    silence_seconds: float = option_fields()["silence_seconds"].default,
    smoothing: bool = option_fields()["smoothing"].default,
    expression_window: int = option_fields()["expression_window"].default,
):
    """Re-draw the mouth of a talking-face video (or photo) so that it follows a new voice track.

    Every option has the default of joygen/config.py (an API client may leave it out).

    Args:
        video: talking-face video (mp4, mov, webm, ...) or a still image (png, jpg, webp).
        audio: the new voice (wav, mp3, m4a, ogg, flac, or a video with sound).
        seed: seed of the audio-to-lip-motion sampling.
        temperature: noise scale of the audio-to-lip-motion sampling.
        mouth_amp: how wide the mouth opens.
        use_depth: condition the editor on the audio-driven mouth depth (off: the no-depth mode).
        landmark_box: crop with the DWPose landmark box (off: the MTCNN box).
        upper_boundary_ratio: mouth-mask top, as a fraction of the blend context.
        expand: side of the blend context, times the face box.
        feather: width of the blend's feather, a fraction of the context.
        crf: H.264 quality of the output, 0 (lossless) to 51.
        silence_mode: where the new voice is silent for a while: "close" (a still, closed mouth),
            "keep-source" (the source frames' own mouths) or "off" (the official behaviour).
        silence_seconds: the shortest silence that silence_mode acts on, in seconds.
        smoothing: smooth the lip motion and the face box over time (off: the official behaviour).
        expression_window: the lip smoothing window in frames, 1 or an odd number from 5 to 25.

    Returns:
        The edited video, a side-by-side video (original | edited), mouth-depth images, the lip plot, a table of
        per-step seconds, the JSON report (no server paths) and a summary line.
    """
    values = dict(
        zip(
            OPTION_ORDER,
            (
                seed,
                temperature,
                mouth_amp,
                use_depth,
                landmark_box,
                upper_boundary_ratio,
                expand,
                feather,
                crf,
                silence_mode,
                silence_seconds,
                smoothing,
                expression_window,
            ),
        )
    )
    names = upload_names(video, audio)
    if not video or not audio:
        raise gr.Error("Give both a face (video or photo) and a voice.")
    last: dict = {}
    try:
        with closing(run_edit(video, audio, names, config_options(values))) as updates:
            for update in updates:
                last.update(update)
                if "report" in update:  # the end: handed over while the run's folder still holds the files
                    yield tuple(last.get(k) for k in API_EDIT_OUTPUTS)
    except Exception as exc:  # noqa: BLE001 - a client gets the readable message
        raise gr.Error(message(exc, names), duration=None) from None
