"""What the page is made of: the examples, the controls (from joygen.config), and the small pieces every handler
shares: notes beside an input, the progress element, readable messages, upload names."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from joygen.config import option_fields, option_help
from joygen.errors import JoyGenError

ROOT = Path(__file__).resolve().parents[1]
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
IDLE_TEXT = "Results appear here as the edit goes: the lip plot, the mouth depth, the frames as they are edited."


def message(exc: BaseException, names: dict[str, str]) -> str:
    """A readable message; files are named as they were uploaded, never by their path on the server."""
    from joygen.report import public_text

    text = (
        str(exc)
        if isinstance(exc, JoyGenError)
        else f"joygen hit an internal error ({type(exc).__name__}: {exc}). The app keeps running; please report it."
    )
    return public_text(text, names)


def shown_name(path: str | None) -> str:
    """An upload's name as the visitor gave it (Gradio keeps it as the last part of the cached path)."""
    return Path(path).name if path else ""


def upload_names(*paths) -> dict[str, str]:
    """Server path -> the name it was uploaded with."""
    return {p: shown_name(p) for p in paths if p}


def note(level: str, text: str) -> str:
    mark = {"ok": "✓", "warn": "⚠", "error": "✗"}[level]
    return f'<p class="jg-note {level}">{mark} {html.escape(text)}</p>'


def progress_html(line: str, sub: str = "", fraction: float | None = None, state: str = "running") -> str:
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


def config_options(values: dict) -> dict:
    """The visitor's options as config options (the server's batch size added)."""
    options = {name: values[name] for name in OPTION_ORDER}
    for name in ("seed", "crf", "expression_window"):
        options[name] = int(options[name])
    return options


def control(name: str, label: str, step: float | None, interactive: bool = True, info: str | None = None):
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
