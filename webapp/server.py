"""What this server loaded and its limits: `AppState` (built once by `load_state`), the module's `STATE`, and the
``@spaces.GPU`` wrapper of the GPU entry points (a no-op off a ZeroGPU Space)."""

from __future__ import annotations

from dataclasses import dataclass, field

from joygen.config import option_fields
from joygen.errors import WeightsError
from joygen.weights.locator import ARTIFACTS, WeightsLocator


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


def gpu(seconds=None):
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


def config():
    """The config the upload checks use: the loaded pipeline's, or the defaults with the server's length limit."""
    from joygen.config import PipelineConfig

    return (
        STATE.pipeline.config
        if STATE.pipeline is not None
        else PipelineConfig().with_options(max_seconds=STATE.max_seconds)
    )
