"""joygen web app (Gradio): layout and wiring only.

The work is `joygen.JoyGenPipeline` (the edit) and `joygen.face_check` (the check); what the page shows of
them is drawn by `joygen.views`; every option's default, range and help come from `joygen.config`.

    python app.py [--weights DIR] [--server-name HOST] [--port N] [--share] [--max-seconds S]
                  [--max-file-size SIZE] [--concurrency N] [--batch-size N] [--device cpu|cuda]

The page starts even without weights and says what is missing and how to supply it. On a Hugging Face Space
the GPU entry points are decorated with ``@spaces.GPU`` when the ``spaces`` package is present. Two named API
endpoints: ``/edit`` and ``/check_face`` (see the README, "The app").
"""

from __future__ import annotations

import argparse
import html
import json
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from joygen.config import option_fields, option_help
from joygen.errors import JoyGenError, WeightsError
from joygen.weights.locator import ARTIFACTS, WeightsLocator

ROOT = Path(__file__).resolve().parent
ASSETS = ROOT / "assets"
UI = ASSETS / "ui"
EXAMPLE_FILES = ASSETS / "examples"
# Examples: [video, photo, voice track, voice from any file], each credited in assets/examples/CREDITS.md.
EXAMPLES = [
    [str(EXAMPLE_FILES / "example_5s.mp4"), None, str(EXAMPLE_FILES / "xinwen_5s.mp3"), None],
    [None, str(EXAMPLE_FILES / "astronaut.jpg"), str(EXAMPLE_FILES / "hello_en.mp3"), None],
    [str(EXAMPLE_FILES / "example_5s.mp4"), None, None, str(EXAMPLE_FILES / "example_5s.mp4")],
]
EXAMPLE_LABELS = [
    "Demo clip + Mandarin speech (JoyGen demo)",
    "Photo (NASA astronaut) + English speech with a pause (espeak-ng)",
    "Demo clip + its own voice, taken from the video file",
]
# The page's options: config option -> (label, slider step). Defaults, ranges and help come from joygen.config.
FACE_CONTROLS = {  # shape the face crop and the blend: applied by "Check the face" and by the edit
    "landmark_box": ("Landmark box (DWPose)", None),
    "upper_boundary_ratio": ("Mouth-mask top", 0.01),
    "expand": ("Context around the face", 0.05),
    "feather": ("Blend feather", 0.01),
}
EDIT_CONTROLS = {  # the edit only
    "seed": ("Seed", None),
    "temperature": ("Temperature", 0.05),
    "mouth_amp": ("Mouth amplitude", 0.05),
    "use_depth": ("Use the mouth depth (3D stage)", None),
    "crf": ("Output quality (H.264 CRF, lower is better)", 1),
    "silence_mode": ("Where the voice is silent", None),
    "silence_seconds": ("Shortest silence acted on (s)", 0.02),  # from 0.04: 0.3 (the default) is a step
    "smoothing": ("Smooth the lips and the face box over time", None),
    "expression_window": ("Lip smoothing window (frames)", None),
}
# Plain words on the page where the config's help (the CLI's, in `python app.py --help`) is technical;
# {default} is the config's default.
PAGE_HELP = {
    "silence_mode": "Where the new voice pauses: close the mouth and hold it still (close), keep the video's own "
    "mouth (keep-source), or let it move as the voice model says (off, as the original JoyGen). Default {default}.",
    "silence_seconds": "Only pauses at least this long count. Default {default} s.",
    "smoothing": "Steadier lips and face crop from frame to frame (off: as the original JoyGen).",
    "expression_window": "How many frames the lip smoothing spans: more is steadier, 1 is none. Default {default}.",
}
# The /edit API's order (options added later come last, so that older clients keep working).
OPTION_ORDER = [
    "seed",
    "temperature",
    "mouth_amp",
    "use_depth",
    *FACE_CONTROLS,
    "crf",
    "silence_mode",
    "silence_seconds",
    "smoothing",
    "expression_window",
]
FACE_TAB_NAMES = {"video": "Video", "photo": "Photo"}
VOICE_TAB_NAMES = {"track": "Voice track", "file": "Voice from any file"}
TICK_S = 1.0  # the progress line is refreshed at least this often (elapsed time) while an edit runs
IDLE_TEXT = "Results appear here as the edit goes: the lip plot, the mouth depth, the frames as they are edited."


@dataclass
class AppState:
    """What the page knows about the models: built once per process by `load_state`."""

    pipeline: object | None = None  # joygen.JoyGenPipeline, or None when the editor's weights are missing
    weights_dir: str | None = None
    problem: str = ""  # why something could not be loaded
    max_seconds: float = 60.0
    batch_size: int = field(default_factory=lambda: option_fields()["batch_size"].default)
    panel: str = ""  # markdown of the weights panel
    tiny: bool = False
    depth: bool = False
    landmarks: bool = False  # DWPose is loaded (the landmark box can be used)
    device: str = "cpu"
    loaded_from: list[dict] = field(default_factory=list)


def load_state(
    weights_dir: str | None = None, max_seconds: float = 60.0, device: str | None = None, batch_size: int | None = None
) -> AppState:
    """Load the pipeline (with the 3D stage when its weights are there) and describe the weights."""
    import torch

    from joygen.config import PipelineConfig
    from joygen.pipeline import JoyGenPipeline

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    state = AppState(weights_dir=weights_dir, max_seconds=max_seconds, device=device)
    config = PipelineConfig().with_options(max_seconds=max_seconds, batch_size=batch_size)
    state.batch_size = config.editor.batch_size
    for use_depth in (True, False):
        try:
            pipe = JoyGenPipeline.from_pretrained(
                weights_dir, device=device, config=config.with_options(use_depth=use_depth)
            )
        except WeightsError as exc:
            state.problem = state.problem or str(exc)
            continue
        state.pipeline, state.tiny, state.depth = pipe, pipe.tiny_weights, pipe.has_depth
        state.landmarks = pipe.face_detector.dwpose is not None
        state.loaded_from = pipe.weights.describe()
        break
    state.panel = weights_panel(state)
    return state


def weights_panel(state: AppState) -> str:
    """The weights table: what was loaded from where, what is missing and how to supply it."""
    loaded = {row["name"]: row for row in state.loaded_from}
    missing = {r["name"]: r for r in WeightsLocator(state.weights_dir, download=False).status() if not r["found"]}
    lines = ["| model | status |", "|---|---|"]
    for name, art in ARTIFACTS.items():
        if name in loaded:
            status = (
                "loaded from " + loaded[name]["source"] + (" — **tiny test weights**" if loaded[name]["tiny"] else "")
            )
        elif name in missing:
            status = "**missing** — " + missing[name]["how"]
        else:
            status = "available, not needed by this run"
        lines.append(f"| {art.title} | {status} |")
    notes = []
    if state.pipeline is not None and not state.depth:
        notes.append("The 3D stage's weights are missing, so edits run in the no-depth mode (see the table).")
    notes.append(
        "Weights are looked for in the local folder (`--weights DIR` or `JOYGEN_WEIGHTS_DIR`, default "
        "`checkpoints/`), then in a Hub repo made by `python -m joygen weights import ... --push-to-hub REPO` "
        "(`JOYGEN_WEIGHTS_REPO`), then in the public Hub repos."
    )
    return "\n\n".join(["\n".join(lines), *notes])


STATE = AppState()  # replaced by main(); tests build their own


def _gpu(seconds=None):
    """``@spaces.GPU`` on a ZeroGPU Space, a no-op elsewhere. ``seconds``: the GPU time asked for (default: from
    the clip length limit, for an edit)."""

    def duration(*args, **kwargs):
        return seconds or int(min(600, 60 + 4 * STATE.max_seconds))

    def decorate(fn):
        try:
            import spaces
        except ImportError:
            return fn
        return spaces.GPU(duration=duration)(fn)

    return decorate


def _message(exc: BaseException, names: dict[str, str]) -> str:
    """A readable message; files are named as they were uploaded, never by their path on the server."""
    from joygen.report import public_text

    text = (
        str(exc)
        if isinstance(exc, JoyGenError)
        else f"joygen hit an internal error ({type(exc).__name__}: {exc}). The app keeps running; please report it."
    )
    return public_text(text, names)


def _name(path: str | None) -> str:
    """An upload's name as the visitor gave it (Gradio keeps it as the last part of the cached path)."""
    return Path(path).name if path else ""


def _note(level: str, text: str) -> str:
    mark = {"ok": "✓", "warn": "⚠", "error": "✗"}[level]
    return f'<p class="jg-note {level}">{mark} {html.escape(text)}</p>'


def _progress_html(line: str, sub: str = "", fraction: float | None = None, state: str = "running") -> str:
    """The progress element: one line, a bar (busy stripes when the step has no count), a second line."""
    bar = ""
    if state == "running":
        fill = (
            '<div class="jg-fill jg-busy"></div>'
            if fraction is None
            else (f'<div class="jg-fill" style="width: {100 * fraction:.1f}%"></div>')
        )
        bar = f'<div class="jg-track" role="progressbar">{fill}</div>'
    sub_html = f'<div class="jg-sub">{html.escape(sub)}</div>' if sub else ""
    return f'<div class="jg-progress jg-{state}"><div class="jg-line">{html.escape(line)}</div>{bar}{sub_html}</div>'


def _options(values: dict) -> dict:
    """The visitor's options as config options (the server's batch size added)."""
    options = {name: values[name] for name in OPTION_ORDER}
    for name in ("seed", "crf", "expression_window"):
        options[name] = int(options[name])
    return options


# -- the edit ----------------------------------------------------------------------------------------------


@_gpu()
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

    pipe = STATE.pipeline
    if pipe is None:
        raise WeightsError("the editor's weights are missing; see the panel at the top of the page")
    config = pipe.config.with_options(
        **{**options, "use_depth": bool(options.get("use_depth", True)) and pipe.has_depth}, batch_size=STATE.batch_size
    )
    work = Path(tempfile.mkdtemp(prefix="joygen-app-"))
    events: queue.Queue = queue.Queue()
    stop = threading.Event()  # set when the page cancels the job: the run stops before its next batch
    clock = RunClock()
    used = used or f"Face: {names.get(face, _name(face))} · voice: {names.get(voice, _name(voice))}"

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
        return _progress_html(clock.text(), used, clock.fraction)

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
                    "progress": _progress_html(
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
        f"Face: {_name(face)} ({FACE_TAB_NAMES[face_tab]} tab) · "
        f"voice: {_name(voice)} ({VOICE_TAB_NAMES[voice_tab]} tab)"
    )
    return face, voice, used


def edit_page(face_tab, video, photo, voice_tab, audio, voice_file, *option_values):
    """The page's Edit button: the selected tabs decide; failures go to the progress element, in full."""
    names = _upload_names(video, photo, audio, voice_file)
    start = {
        "progress": _progress_html("Starting the edit ..."),
        "check_line": "",
        "check": gr.update(visible=False),
        **dict.fromkeys(["live", "side", "video", "summary", "plot", "depth", "timings", "report"]),
    }
    yield _page(start)
    try:
        face, voice, used = _edit_inputs(face_tab, video, photo, voice_tab, audio, voice_file)
        options = _options(dict(zip(OPTION_ORDER, option_values)))
        with closing(run_edit(face, voice, names, options, used)) as updates:
            for update in updates:
                if "side" in update:  # the end: the side-by-side video takes the live preview's place
                    update = {**update, "live": gr.update(visible=False)}
                yield _page(update)
    except Exception as exc:  # noqa: BLE001 - every failure is said in the progress element, in full
        failed = {
            "progress": _progress_html("The edit stopped: " + _message(exc, names), state="failed"),
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


def _upload_names(*paths) -> dict[str, str]:
    return {p: _name(p) for p in paths if p}


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
    names = _upload_names(video, audio)
    if not video or not audio:
        raise gr.Error("Give both a face (video or photo) and a voice.")
    last: dict = {}
    try:
        with closing(run_edit(video, audio, names, _options(values))) as updates:
            for update in updates:
                last.update(update)
                if "report" in update:  # the end: handed over while the run's folder still holds the files
                    yield tuple(last.get(k) for k in API_EDIT_OUTPUTS)
    except Exception as exc:  # noqa: BLE001 - a client gets the readable message
        raise gr.Error(_message(exc, names), duration=None) from None


# -- the face check ----------------------------------------------------------------------------------------


@_gpu(seconds=60)
def run_check(face: str, frame: int | None, options: dict):
    """`joygen.face_check.check_face` with the page's face controls; captioned images and one line."""
    from joygen.face_check import check_face
    from joygen.views import face_check_images, face_check_text

    pipe = STATE.pipeline
    if pipe is None:
        raise WeightsError("the editor's weights are missing; see the panel at the top of the page")
    check = check_face(pipe, face, frame=frame, config=pipe.config.with_options(**options))
    return face_check_images(check), face_check_text(check), check.frame_index


def check_page(face_tab, video, photo, first_face, frame, *face_values):
    """The page's Check button: images in the results column, problems beside the face."""
    face = photo if face_tab == "photo" else video
    notes = {"video": gr.skip(), "photo": gr.skip()}
    failed = (gr.update(visible=False), "")
    if not face:
        notes[face_tab] = _note("error", f"The {FACE_TAB_NAMES[face_tab]} tab holds nothing to check yet.")
        return *failed, notes["video"], notes["photo"], gr.skip()
    try:
        images, line, index = run_check(face, None if first_face else int(frame), dict(zip(FACE_CONTROLS, face_values)))
    except Exception as exc:  # noqa: BLE001 - said beside the face
        notes[face_tab] = _note("error", _message(exc, _upload_names(face)))
        return *failed, notes["video"], notes["photo"], gr.skip()
    line = f"**{_name(face)}** ({FACE_TAB_NAMES[face_tab]} tab): {line}"
    return gr.update(value=images, visible=True), line, notes["video"], notes["photo"], gr.update(value=index)


def check_face(
    video: str,
    first_face: bool,
    frame: int,
    landmark_box: bool,
    upper_boundary_ratio: float,
    expand: float,
    feather: float,
):
    """Show what an edit would do with one frame: the face box, the crop, the paste-back mask, the mouth depth.

    Args:
        video: talking-face video or still image.
        first_face: check the first frame with a face (among the first 2 s); off: the frame given below.
        frame: the frame to check, 25 per second, from 0.
        landmark_box, upper_boundary_ratio, expand, feather: as for /edit.

    Returns:
        Captioned images (the frame with its boxes, the 256x256 crop, the mask, the depth) and one line.
    """
    try:
        images, line, _ = run_check(
            video,
            None if first_face else int(frame),
            dict(zip(FACE_CONTROLS, (landmark_box, upper_boundary_ratio, expand, feather))),
        )
    except Exception as exc:  # noqa: BLE001 - a client gets the readable message
        raise gr.Error(_message(exc, _upload_names(video)), duration=None) from None
    return images, line


# -- checks on upload --------------------------------------------------------------------------------------


def _config():
    from joygen.config import PipelineConfig

    return (
        STATE.pipeline.config
        if STATE.pipeline is not None
        else PipelineConfig().with_options(max_seconds=STATE.max_seconds)
    )


def _face_check(path: str) -> tuple[tuple[str, str], object]:
    """``((level, text), frame slider update)`` for a face file that just arrived."""
    from joygen.face_check import SCAN_BATCH
    from joygen.media import check_video
    from joygen.views import face_note

    try:
        info = check_video(path, _config())
        found = searched = None
        if STATE.pipeline is not None:
            found, searched = _first_face(path), (1 if info.still_image else SCAN_BATCH)
    except Exception as exc:  # noqa: BLE001 - said beside the input
        return ("error", _message(exc, _upload_names(path))), gr.skip()
    last = max(1, (info.estimated_frames or 1) - 1)
    return face_note(_name(path), info, found, searched), gr.update(maximum=last, value=0)


@_gpu(seconds=20)
def _first_face(path: str) -> int | None:
    """The first of the first frames with a face (the face detector runs where the models are)."""
    from joygen.face_check import first_face_frame

    return first_face_frame(STATE.pipeline, path)


def _voice_check(path: str) -> tuple[str, str]:
    """``(level, text)`` for a voice file that just arrived."""
    import numpy as np

    from joygen.media import check_audio, load_audio
    from joygen.trajectory import loudness
    from joygen.views import voice_note

    try:
        info = check_audio(path, _config())
        wav = load_audio(path, info=info)
        peak = float(np.max(loudness(wav, max(1, len(wav) // 640))["loudness_db"]))
    except Exception as exc:  # noqa: BLE001 - said beside the input
        return "error", _message(exc, _upload_names(path))
    return voice_note(_name(path), info, peak)


def on_face(path, tab: str):
    """A face arrived in (or left) a tab: check it and select that tab."""
    if not path:
        return "", gr.skip(), gr.skip(), gr.skip()
    note, slider = _face_check(path)
    return _note(*note), gr.Tabs(selected=tab), tab, slider


def on_voice(path, tab: str):
    """A voice arrived in (or left) a tab: check it and select that tab."""
    if not path:
        return "", gr.skip(), gr.skip()
    return _note(*_voice_check(path)), gr.Tabs(selected=tab), tab


def on_face_other(path, face_tab):
    """A file the browser would not take as a video or a photo: a photo goes to the Photo tab, a video to the
    Video tab (their checks then run), anything else is explained beside the selected face tab."""
    from joygen.media import probe

    skip = gr.skip()
    if not path:
        return skip, skip, skip, skip, skip
    try:
        info = probe(path, "video")
        problem = (
            f"{_name(path)} is a sound file with no pictures: it belongs in the voice box below. For the face, give "
            "a video (mp4, mov, webm, ...) or a photo (png, jpg, webp)."
        )
    except Exception as exc:  # noqa: BLE001 - said beside the input
        info, problem = None, _message(exc, _upload_names(path))
    if info is not None and info.video is not None:
        return (None, skip, path, skip, skip) if info.still_image else (None, path, skip, skip, skip)
    notes = [skip, skip]
    notes[0 if face_tab == "video" else 1] = _note("error", problem)
    return None, skip, skip, *notes


def on_too_big(event: str):
    """A file over the upload limit, named by the page before uploading it: said beside its box."""
    from joygen.views import too_big_note

    if not event:
        return (gr.skip(),) * 4
    try:
        found = json.loads(event)
        note = _note(*too_big_note(str(found["name"]), int(found["size"]), int(found["limit"])))
        box = ["video", "photo", "audio", "voice_file"].index(found["box"])
    except (ValueError, KeyError, TypeError):
        return (gr.skip(),) * 4
    return tuple(note if k == box else gr.skip() for k in range(4))


def on_voice_other(path):
    """A file the browser would not take as audio (a video with sound, say): it goes to the "any file" tab."""
    if not path:
        return gr.skip(), gr.skip(), gr.skip()
    level, text = _voice_check(path)
    if level == "error":
        return None, gr.skip(), _note(level, text)
    return None, path, gr.skip()


# -- the page ----------------------------------------------------------------------------------------------


def _control(name: str, label: str, step: float | None, interactive: bool = True, info: str | None = None):
    """A control for a config option: its default, range and help from joygen.config (``#opt-NAME`` in the page)."""
    f = option_fields()[name]
    meta, default = f.metadata, f.default
    plain = PAGE_HELP.get(name, "").format(default=default)
    common = {"label": label, "info": info or plain or option_help(name), "elem_id": f"opt-{name}"}
    if meta["kind"] is bool:
        return gr.Checkbox(default and interactive, interactive=interactive, **common)
    if meta["choices"]:
        return gr.Radio(list(meta["choices"]), value=default, interactive=interactive, **common)
    if meta["values"]:  # not every number in the range: the values the config accepts, as a list
        return gr.Dropdown(list(meta["values"]), value=default, interactive=interactive, **common)
    lo, hi = meta["range"]
    if hi is None or hi - lo > 10_000:
        return gr.Number(default, precision=0 if meta["kind"] is int else None, minimum=lo, maximum=hi, **common)
    return gr.Slider(lo, hi, default, step=step, **common)


# On a click, before the server answers: scroll to the progress element and say that the edit is on its way.
_WAITING_JS = (
    "() => { document.getElementById('progress')?.scrollIntoView({behavior: 'smooth', block: 'start'}); "
    f"return {json.dumps(_progress_html('Waiting for the editor ...', 'If other edits are running, this one starts when one ends.'))}; }}"
)
# On "Check the face", before the server answers: scroll to the check's line and say that it is running.
_CHECKING_JS = (
    "() => { document.getElementById('check-line')?.scrollIntoView({behavior: 'smooth', block: 'start'}); "
    "return 'Checking the face ... (a few seconds)'; }"
)
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


def build_demo(state: AppState | None = None) -> gr.Blocks:
    """The page. ``state`` is what `load_state` found (default: the module's)."""
    global STATE
    if state is not None:
        STATE = state
    ready = STATE.pipeline is not None
    with gr.Blocks(title="joygen: lip-sync video editing", delete_cache=(3600, 7200)) as demo:
        if not ready:
            gr.Markdown((UI / "no_weights.md").read_text(), elem_id="no-weights")
        gr.Markdown((UI / "tiny.md").read_text(), visible=STATE.tiny, elem_id="tiny-banner")
        gr.Markdown((UI / "intro.md").read_text(), elem_id="intro")
        face_tab, voice_tab = gr.State("video"), gr.State("track")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                with gr.Tabs(selected="video", elem_id="face-tabs") as face_tabs:
                    with gr.Tab("Video", id="video", elem_id="tab-video") as tab_video:
                        video = gr.Video(label="Talking-face video", sources=["upload", "webcam"], elem_id="in-video")
                        video_note = gr.HTML(elem_id="video-note")
                    with gr.Tab("Photo", id="photo", elem_id="tab-photo") as tab_photo:
                        photo = gr.Image(
                            label="Photo of a face",
                            type="filepath",
                            image_mode=None,
                            sources=["upload", "webcam", "clipboard"],
                            elem_id="in-photo",
                        )
                        photo_note = gr.HTML(elem_id="photo-note")
                with gr.Tabs(selected="track", elem_id="voice-tabs") as voice_tabs:
                    with gr.Tab("Voice track", id="track", elem_id="tab-track") as tab_track:
                        audio = gr.Audio(
                            label="New voice", type="filepath", sources=["upload", "microphone"], elem_id="in-audio"
                        )
                        audio_note = gr.HTML(elem_id="audio-note")
                    with gr.Tab("Voice from any file", id="file", elem_id="tab-file") as tab_file:
                        voice_file = gr.File(
                            label="Any audio or video file with sound (its first sound track)",
                            type="filepath",
                            height=120,
                            elem_id="in-voice-file",
                        )
                        voice_file_note = gr.HTML(elem_id="voice-file-note")
                too_big = gr.Textbox(visible="hidden", elem_id="too-big")  # set by assets/ui/app.js
                face_other = gr.File(type="filepath", visible="hidden", elem_id="in-face-other")
                voice_other = gr.File(type="filepath", visible="hidden", elem_id="in-voice-other")
                with gr.Row():
                    check_button = gr.Button("Check the face", interactive=ready, min_width=120, elem_id="check-button")
                    edit_button = gr.Button(
                        "Edit the lips", variant="primary", interactive=ready, min_width=120, elem_id="edit-button"
                    )
                reason = "" if ready else "Check and Edit are off: the editor's weights are missing (see the top)."
                gr.Markdown(reason, visible=not ready, elem_id="buttons-reason")
                clear_button = gr.Button("Clear", size="sm", variant="secondary", elem_id="clear-button")
                with gr.Accordion("Face crop and blend (used by the check and the edit)", open=False):
                    first_face = gr.Checkbox(
                        True, label="Check the first frame with a face", info="off: check the frame chosen below"
                    )
                    frame = gr.Slider(0, 1, 0, step=1, label="Frame to check (25 per second)", elem_id="check-frame")
                    face_controls = [
                        _control(name, label, step, interactive=STATE.landmarks or name != "landmark_box")
                        for name, (label, step) in FACE_CONTROLS.items()
                    ]
                with gr.Accordion("Advanced options", open=False):
                    edit_controls = {
                        name: _control(
                            name,
                            label,
                            step,
                            interactive=STATE.depth or name != "use_depth",
                            info=None if STATE.depth or name != "use_depth" else "3D weights missing: see Weights",
                        )
                        for name, (label, step) in EDIT_CONTROLS.items()
                    }
                if ready:
                    gr.Examples(
                        EXAMPLES,
                        [video, photo, audio, voice_file],
                        label="Examples (see the credits in assets/examples)",
                        example_labels=EXAMPLE_LABELS,
                    )
                gr.Markdown((UI / "tips.md").read_text())
            with gr.Column(scale=7, min_width=320):
                progress = gr.HTML(_progress_html(IDLE_TEXT, state="idle"), elem_id="progress")
                check_line = gr.Markdown(elem_id="check-line")
                check_gallery = gr.Gallery(
                    label="Check the face: what the edit will use",
                    columns=2,
                    object_fit="contain",
                    height="auto",
                    fit_columns=False,
                    visible=False,
                    elem_id="check-gallery",
                )
                live = gr.Image(
                    label="Latest edited frame (original | edited)",
                    interactive=False,
                    visible=False,
                    elem_id="live-frame",
                )
                side = gr.Video(
                    label="Side by side: original | edited",
                    show_label=False,  # the picture says which half is which
                    interactive=False,
                    visible=False,
                    elem_id="out-side",
                )
                summary = gr.Markdown(visible=False, elem_id="summary")
                with gr.Row(equal_height=False):
                    edited = gr.Video(
                        label="Edited video", interactive=False, height=320, visible=False, elem_id="out-video"
                    )
                    with gr.Column():
                        timings = gr.Dataframe(
                            headers=["step", "seconds", "share %"],
                            label="Time per step",
                            interactive=False,
                            max_height=320,
                            column_widths=["56%", "24%", "20%"],
                            wrap=True,
                            visible=False,
                            elem_id="timings",
                        )
                        report = gr.File(label="JSON report (no server paths)", visible=False, elem_id="report")
                plot = gr.Image(
                    label="Lip trajectory: mouth opening (mm) and loudness (dB)",
                    interactive=False,
                    visible=False,
                    elem_id="lip-plot",
                )
                gallery = gr.Gallery(
                    label="Mouth depth (near = warm) over the face crop and beside it",
                    columns=2,
                    object_fit="contain",
                    height="auto",
                    fit_columns=False,
                    visible=False,
                    elem_id="depth-gallery",
                )
                gr.Markdown((UI / "about.md").read_text(), elem_id="about")
        with gr.Accordion("Weights", open=False, elem_id="weights-panel"):
            gr.Markdown(STATE.panel or weights_panel(STATE))

        # which tab is selected decides which file is used
        private = {"api_visibility": "private"}  # the page's own wiring; the API is /edit and /check_face
        # a setting that does nothing under another is greyed out there
        edit_controls["silence_mode"].change(
            lambda mode: gr.update(interactive=mode != "off"),
            edit_controls["silence_mode"],
            edit_controls["silence_seconds"],
            queue=False,
            **private,
        )
        edit_controls["smoothing"].change(
            lambda on: gr.update(interactive=bool(on)),
            edit_controls["smoothing"],
            edit_controls["expression_window"],
            queue=False,
            **private,
        )
        for tab, name, holder in (
            (tab_video, "video", face_tab),
            (tab_photo, "photo", face_tab),
            (tab_track, "track", voice_tab),
            (tab_file, "file", voice_tab),
        ):
            tab.select(lambda n=name: n, None, holder, queue=False, **private)
        # every upload is checked at once, the answer beside its box; what arrives in a tab selects it
        video.change(lambda p: on_face(p, "video"), video, [video_note, face_tabs, face_tab, frame], **private)
        photo.change(lambda p: on_face(p, "photo"), photo, [photo_note, face_tabs, face_tab, frame], **private)
        audio.change(lambda p: on_voice(p, "track"), audio, [audio_note, voice_tabs, voice_tab], **private)
        voice_file.change(
            lambda p: on_voice(p, "file"), voice_file, [voice_file_note, voice_tabs, voice_tab], **private
        )
        face_other.upload(
            on_face_other, [face_other, face_tab], [face_other, video, photo, video_note, photo_note], **private
        )
        voice_other.upload(on_voice_other, voice_other, [voice_other, voice_file, audio_note], **private)
        notes = [video_note, photo_note, audio_note, voice_file_note]
        too_big.change(on_too_big, too_big, notes, queue=False, **private)
        frame.release(lambda: False, None, first_face, queue=False, **private)

        outputs = {
            "progress": progress,
            "check_line": check_line,
            "check": check_gallery,
            "live": live,
            "side": side,
            "video": edited,
            "summary": summary,
            "plot": plot,
            "depth": gallery,
            "timings": timings,
            "report": report,
        }
        option_inputs = [
            edit_controls[n] if n in edit_controls else face_controls[list(FACE_CONTROLS).index(n)]
            for n in OPTION_ORDER
        ]
        edit_button.click(None, None, progress, js=_WAITING_JS, queue=False, **private)
        edit_event = edit_button.click(
            edit_page,
            [face_tab, video, photo, voice_tab, audio, voice_file, *option_inputs],
            [outputs[k] for k in PAGE_EDIT_OUTPUTS],
            show_progress="hidden",
            api_visibility="private",
            concurrency_id="edit",  # the page and the API share --concurrency
        )
        check_button.click(None, None, check_line, js=_CHECKING_JS, queue=False, **private)
        check_event = check_button.click(
            check_page,
            [face_tab, video, photo, first_face, frame, *face_controls],
            [check_gallery, check_line, video_note, photo_note, frame],
            show_progress="full",
            show_progress_on=[check_line],
            api_visibility="private",
            concurrency_id="check",
        )

        def clear():
            hidden = gr.update(value=None, visible=False)
            return (
                None,
                None,
                None,
                None,
                "",
                "",
                "",
                "",
                _progress_html(IDLE_TEXT, state="idle"),
                "",
                gr.update(visible=False),
                *[hidden] * 8,
            )

        clear_button.click(
            clear,
            None,
            [
                video,
                photo,
                audio,
                voice_file,
                video_note,
                photo_note,
                audio_note,
                voice_file_note,
                progress,
                check_line,
                check_gallery,
                live,
                side,
                edited,
                summary,
                plot,
                gallery,
                timings,
                report,
            ],
            queue=False,
            cancels=[edit_event, check_event],
            **private,
        )

        # the named API: flat, typed endpoints (hidden buttons, so that they take files as plain arguments)
        api_edit = gr.Button(visible=False)
        api_edit.click(
            edit,
            [video, audio, *option_inputs],
            [outputs[k] for k in API_EDIT_OUTPUTS],
            api_name="edit",
            show_progress="hidden",
            concurrency_id="edit",
        )
        api_check = gr.Button(visible=False)
        api_check.click(
            check_face,
            [video, first_face, frame, *face_controls],
            [check_gallery, check_line],
            api_name="check_face",
            show_progress="hidden",
            concurrency_id="check",
        )
    return demo


def launch_options() -> dict:
    """The page's style and script (Gradio 6 takes them at launch)."""
    return {"css_paths": [UI / "app.css"], "js": (UI / "app.js").read_text()}


def _help_epilog() -> str:
    lines = ["Controls on the page (defaults, ranges and help from joygen.config):"]
    for name, (label, _) in {**FACE_CONTROLS, **EDIT_CONTROLS}.items():
        lines.append(f"  {label}: {option_help(name)}")
    lines.append("  Check the face: one frame through the edit's analysis (boxes, crop, mask, mouth depth).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve the joygen web app.",
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--weights", help="local weights folder (default: $JOYGEN_WEIGHTS_DIR or checkpoints/)")
    parser.add_argument("--server-name", default=None, help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest video / voice track accepted (s)")
    parser.add_argument("--max-file-size", default="200mb", help="largest upload accepted")
    parser.add_argument("--concurrency", type=int, default=1, help="edits run at once (default 1)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help=f"{option_help('batch_size')}; a server setting, not on the page"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)
    state = load_state(
        args.weights or os.environ.get("JOYGEN_WEIGHTS_DIR"), args.max_seconds, args.device, args.batch_size
    )
    demo = build_demo(state)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=32)
    demo.launch(
        server_name=args.server_name,
        server_port=args.port,
        share=args.share,
        max_file_size=args.max_file_size,
        **launch_options(),
    )


if __name__ == "__main__":
    main()
