"""joygen web app (Gradio): layout and wiring only; all the work is `joygen.JoyGenPipeline`.

    python app.py [--weights DIR] [--server-name HOST] [--port N] [--share] [--max-seconds S] [--concurrency N]

The page starts even without weights and says what is missing and how to supply it. On a Hugging Face Space
the GPU entry point is decorated with ``@spaces.GPU`` when the ``spaces`` package is present.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from joygen.errors import JoyGenError, WeightsError
from joygen.weights.locator import ARTIFACTS, WeightsLocator

ROOT = Path(__file__).resolve().parent
ASSETS = ROOT / "assets"
EXAMPLES = [[str(ASSETS / "examples" / "example_5s.mp4"), str(ASSETS / "examples" / "xinwen_5s.mp3")]]
STAGE_NAMES = {
    "probe": "Checking the inputs",
    "audio_features": "Whisper audio features",
    "audio_to_motion": "Audio to lip motion (stage 1)",
    "edit": "Faces, mouth depth and editing",
    "done": "Done",
}


@dataclass
class AppState:
    """What the page knows about the models: built once per process by `load_state`."""

    pipeline: object | None = None  # joygen.JoyGenPipeline, or None when the editor's weights are missing
    weights_dir: str | None = None
    problem: str = ""  # why something could not be loaded
    max_seconds: float = 60.0
    panel: str = ""  # markdown of the weights panel
    tiny: bool = False
    depth: bool = False
    device: str = "cpu"
    loaded_from: list[dict] = field(default_factory=list)


def load_state(weights_dir: str | None = None, max_seconds: float = 60.0, device: str | None = None) -> AppState:
    """Load the pipeline (with the 3D stage when its weights are there) and describe the weights."""
    import torch

    from joygen.config import PipelineConfig
    from joygen.pipeline import JoyGenPipeline

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    state = AppState(weights_dir=weights_dir, max_seconds=max_seconds, device=device)
    config = PipelineConfig().with_options(max_seconds=max_seconds)
    for use_depth in (True, False):
        try:
            pipe = JoyGenPipeline.from_pretrained(
                weights_dir, device=device, config=config.with_options(use_depth=use_depth)
            )
        except WeightsError as exc:
            state.problem = state.problem or str(exc)
            continue
        state.pipeline, state.tiny, state.depth = pipe, pipe.tiny_weights, pipe.has_depth
        state.loaded_from = pipe.weights.describe()
        break
    state.panel = weights_panel(state)
    return state


def weights_panel(state: AppState) -> str:
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
    if state.pipeline is None:
        notes.append("**The editor cannot run: weights are missing.** " + state.problem.replace("\n", "  \n"))
    elif not state.depth:
        notes.append("The 3D stage's weights are missing, so edits run in the no-depth mode (see the table).")
    notes.append(
        "Weights are looked for in the local folder (`--weights DIR` or `JOYGEN_WEIGHTS_DIR`, default "
        "`checkpoints/`), then in a Hub repo made by `python -m joygen weights import ... --push-to-hub REPO` "
        "(`JOYGEN_WEIGHTS_REPO`), then in the public Hub repos."
    )
    return "\n\n".join(["\n".join(lines), *notes])


STATE = AppState()  # replaced by main(); tests build their own


def _gpu(fn):
    """``@spaces.GPU`` on a ZeroGPU Space (duration from the clip length); a no-op elsewhere."""
    try:
        import spaces
    except ImportError:
        return fn

    def duration(video, audio, *args, **kwargs):
        return int(min(600, 60 + 4 * STATE.max_seconds))

    return spaces.GPU(duration=duration)(fn)


def _message(exc: BaseException, *uploads: str) -> str:
    """A readable message; uploads are named by their file name, not by Gradio's temporary path."""
    text = (
        str(exc)
        if isinstance(exc, JoyGenError)
        else (f"joygen hit an internal error ({type(exc).__name__}: {exc}). The app keeps running; please report it.")
    )
    for path in uploads:
        text = text.replace(str(path), Path(path).name)
    return text


@_gpu
def edit(
    video: str,
    audio: str,
    seed: int = 0,
    temperature: float = 0.2,
    mouth_amp: float = 0.45,
    use_depth: bool = True,
    batch_size: int = 8,
    feather: float = 0.1,
    crf: int = 18,
    voice_file: str | None = None,
    progress=gr.Progress(),  # noqa: B008 - Gradio injects progress through this default
):
    """Re-draw the mouth of a talking-face video so that it follows a new voice track.

    Args:
        video: talking-face video (mp4, mov, webm, ...) or a still image.
        audio: the new voice track (wav, mp3, m4a, ogg, flac, or a video with sound).
        seed: seed of the audio-to-lip-motion sampling.
        temperature: prior noise scale of the audio-to-motion model (official 0.2).
        mouth_amp: mouth amplitude condition of the audio-to-motion model (official 0.45).
        use_depth: condition the editor on the audio-driven mouth depth (off: the no-depth mode).
        batch_size: frames per model batch.
        feather: width of the paste-back feather, as a fraction of the face context.
        crf: H.264 quality of the output, 0 (lossless) .. 51.
        voice_file: any audio or video file to take the voice from, used when ``audio`` is empty.

    Returns:
        The edited video, a side-by-side video (original | edited), mouth-depth previews, the lip trajectory,
        a table of per-stage seconds, the JSON report, and a status line.
    """
    from joygen.views import depth_strip, timing_rows, trajectory_rows

    if not video:
        raise gr.Error("Upload a talking-face video (or a photo) first.")
    audio = audio or voice_file
    if not audio:
        raise gr.Error("Upload or record the new voice track first.")
    pipe = STATE.pipeline
    if pipe is None:
        raise gr.Error("The models are not loaded: " + STATE.problem, duration=None)
    try:
        config = pipe.config.with_options(
            seed=int(seed),
            temperature=float(temperature),
            mouth_amp=float(mouth_amp),
            use_depth=bool(use_depth) and pipe.has_depth,
            batch_size=int(batch_size),
            feather=float(feather),
            crf=int(crf),
        )
    except (JoyGenError, TypeError, ValueError) as exc:
        raise gr.Error(str(exc)) from None
    work = Path(tempfile.mkdtemp(prefix="joygen-app-"))
    events: queue.Queue = queue.Queue()
    stop = threading.Event()  # set when the page cancels the job: the run stops before its next batch

    def run():
        try:
            result = pipe(
                video,
                audio,
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

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    skip = gr.skip()
    try:
        while True:
            kind, data = events.get()
            if kind == "progress":
                stage, done, total = data
                progress(done / max(total, 1), desc=STAGE_NAMES.get(stage, stage))
            elif kind == "trajectory":
                yield (
                    skip,
                    skip,
                    skip,
                    _plot(trajectory_rows(data)),
                    skip,
                    skip,
                    "Lip trajectory ready; editing frames ...",
                )
            elif kind == "depth":
                yield skip, skip, depth_strip(data), skip, skip, skip, skip
            elif kind == "error":
                message = _message(data, video, audio)
                yield skip, skip, skip, skip, skip, skip, f"**Failed:** {message}"
                raise gr.Error(message, duration=None)
            elif kind == "done":
                status = " ".join(["**Done.**", *data.warnings]) if data.warnings else "**Done.**"
                yield (
                    str(data.video),
                    str(work / "side_by_side.mp4"),
                    depth_strip(data.depth_previews),
                    _plot(trajectory_rows(data.trajectory)),
                    timing_rows(data),
                    str(work / "report.json"),
                    status,
                )
                return
    finally:
        stop.set()  # a cancelled job closes this generator: the worker stops before its next batch
        worker.join()
        shutil.rmtree(work, ignore_errors=True)  # Gradio has copied what it shows into its own cache


def _plot(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows, columns=["time_s", "series", "value"])


def build_demo(state: AppState | None = None) -> gr.Blocks:
    """The page. ``state`` is what `load_state` found (default: the module's)."""
    global STATE
    if state is not None:
        STATE = state
    with gr.Blocks(title="joygen", delete_cache=(3600, 7200)) as demo:
        gr.Markdown((ASSETS / "ui" / "intro.md").read_text())
        gr.Markdown(
            "⚠️ **Tiny random test weights are loaded: every output is meaningless.** "
            "They only show that the code paths run.",
            visible=STATE.tiny,
            elem_id="tiny-banner",
        )
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Talking-face video", sources=["upload", "webcam"], elem_id="in-video")
                with gr.Tabs():
                    with gr.Tab("New voice track"):
                        audio = gr.Audio(
                            label="New voice track",
                            type="filepath",
                            sources=["upload", "microphone"],
                            elem_id="in-audio",
                        )
                    with gr.Tab("Voice from any file"):
                        voice_file = gr.File(
                            label="Any audio or video file with sound (its first sound track is used)",
                            type="filepath",
                            elem_id="in-voice-file",
                        )
                gr.Examples(EXAMPLES, [video, audio], label="Example (JoyGen demo clip and speech, Apache-2.0)")
                with gr.Accordion("Advanced options", open=False):
                    seed = gr.Number(0, label="Seed", precision=0)
                    temperature = gr.Slider(0.0, 1.0, 0.2, step=0.05, label="Temperature (lip-motion sampling)")
                    mouth_amp = gr.Slider(0.0, 1.0, 0.45, step=0.05, label="Mouth amplitude")
                    use_depth = gr.Checkbox(
                        STATE.depth,
                        label="Use the mouth depth map (3D stage)",
                        interactive=STATE.depth,
                        info=None if STATE.depth else "3D weights missing: see the weights panel",
                    )
                    batch_size = gr.Slider(1, 32, 8, step=1, label="Batch size (frames)")
                    feather = gr.Slider(0.02, 0.3, 0.1, step=0.01, label="Blend feather")
                    crf = gr.Slider(0, 40, 18, step=1, label="Output quality (H.264 CRF, lower is better)")
                button = gr.Button("Edit the lips", variant="primary", elem_id="edit-button")
                gr.Markdown((ASSETS / "ui" / "tips.md").read_text())
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                edited = gr.Video(label="Edited video", elem_id="out-video", interactive=False)
                side = gr.Video(label="Side by side: original | edited", elem_id="out-side", interactive=False)
                plot = gr.LinePlot(
                    x="time_s",
                    y="value",
                    color="series",
                    title="Lip trajectory",
                    x_title="time (s)",
                    y_title="mm",
                    elem_id="lip-plot",
                )
                gallery = gr.Gallery(
                    label="Mouth depth maps beside their face crops",
                    columns=2,
                    object_fit="contain",
                    height="auto",
                    elem_id="depth-gallery",
                )
                timings = gr.Dataframe(
                    headers=["stage", "seconds", "share %"], label="Per-stage timings", elem_id="timings"
                )
                report = gr.File(label="JSON report", elem_id="report")
        with gr.Accordion("Weights", open=STATE.pipeline is None, elem_id="weights-panel"):
            gr.Markdown(STATE.panel or weights_panel(STATE))
        button.click(
            edit,
            [video, audio, seed, temperature, mouth_amp, use_depth, batch_size, feather, crf, voice_file],
            [edited, side, gallery, plot, timings, report, status],
            api_name="edit",
        )
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the joygen web app.")
    parser.add_argument("--weights", help="local weights folder (default: $JOYGEN_WEIGHTS_DIR or checkpoints/)")
    parser.add_argument("--server-name", default=None, help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest video / voice track accepted (s)")
    parser.add_argument("--max-file-size", default="200mb", help="largest upload accepted")
    parser.add_argument("--concurrency", type=int, default=1, help="edits run at once (default 1)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)
    state = load_state(args.weights or os.environ.get("JOYGEN_WEIGHTS_DIR"), args.max_seconds, args.device)
    demo = build_demo(state)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=32)
    demo.launch(
        server_name=args.server_name,
        server_port=args.port,
        share=args.share,
        max_file_size=args.max_file_size,
    )


if __name__ == "__main__":
    main()
