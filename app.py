"""joygen web app (Gradio): starts the page of `webapp` (layout and wiring in `webapp.page`).

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
import os

from joygen.config import option_help
from webapp.page import build_demo, launch_options
from webapp.parts import EDIT_CONTROLS, FACE_CONTROLS
from webapp.server import load_state


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
