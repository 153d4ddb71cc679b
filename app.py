"""joygen web app (Gradio): layout and wiring only; all the work is `joygen.JoyGenPipeline`.

    python app.py [--weights DIR] [--server-name HOST] [--port N] [--share]

The page starts even without weights and says what is missing and how to supply it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from functools import cache

import gradio as gr

from joygen.errors import JoyGenError
from joygen.weights import EDITOR_ARTIFACTS, WeightsLocator

WEIGHTS_DIR = os.environ.get("JOYGEN_WEIGHTS_DIR")  # set by --weights before the Blocks are built


@cache
def pipeline():
    """Load the models once per process (first request)."""
    import torch

    from joygen.pipeline import JoyGenPipeline

    return JoyGenPipeline.from_pretrained(WEIGHTS_DIR, device="cuda" if torch.cuda.is_available() else "cpu")


def weights_panel() -> str:
    rows = WeightsLocator(WEIGHTS_DIR, download=False).status(list(EDITOR_ARTIFACTS))  # never download here
    lines = ["| model | status |", "|---|---|"]
    for r in rows:
        status = f"from {r['source']}" + (" — **tiny test weights: output is meaningless**" if r["tiny"] else "")
        lines.append(f"| {r['title']} | {status if r['found'] else 'missing: ' + r['how']} |")
    return "\n".join(lines)


def edit(video: str, audio: str) -> str:
    """Re-draw the mouth of `video` so that it follows `audio`; returns the edited mp4."""
    if not video or not audio:
        raise gr.Error("Give both a video and a voice track.")
    try:
        out_dir = tempfile.mkdtemp(prefix="joygen-app-")
        return str(pipeline()(video, audio, os.path.join(out_dir, "edited.mp4")).video)
    except JoyGenError as exc:
        raise gr.Error(str(exc)) from None


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="joygen") as demo:
        gr.Markdown("# joygen\nAudio-driven, depth-aware talking-face editing (JoyGen, arXiv 2501.01798).")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Talking-face video", sources=["upload"])
                audio = gr.Audio(label="New voice track", type="filepath", sources=["upload"])
                button = gr.Button("Edit", variant="primary")
            with gr.Column():
                result = gr.Video(label="Edited video")
        with gr.Accordion("Weights", open=False):
            gr.Markdown(weights_panel())
        button.click(edit, [video, audio], result, api_name="edit")
    return demo


def main() -> None:
    global WEIGHTS_DIR
    parser = argparse.ArgumentParser(description="Serve the joygen web app.")
    parser.add_argument("--weights", help="local weights folder (default: $JOYGEN_WEIGHTS_DIR or checkpoints/)")
    parser.add_argument("--server-name", default=None, help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    args = parser.parse_args()
    WEIGHTS_DIR = args.weights or WEIGHTS_DIR
    build_demo().queue(default_concurrency_limit=1).launch(
        server_name=args.server_name, server_port=args.port, share=args.share
    )


if __name__ == "__main__":
    main()
