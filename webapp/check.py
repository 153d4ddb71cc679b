"""The face check (the page's Check button and the named ``/check_face`` API) and the checks that run as soon as
a file arrives in an input, their answers beside it."""

from __future__ import annotations

import json

import gradio as gr

from joygen.errors import WeightsError

from . import server
from .notes import face_note, too_big_note, voice_note
from .parts import FACE_CONTROLS, FACE_TAB_NAMES, message, note, shown_name, upload_names
from .server import gpu


@gpu(seconds=60)
def run_check(face: str, frame: int | None, options: dict):
    """`joygen.face_check.check_face` with the page's face controls; captioned images and one line."""
    from joygen.face_check import check_face
    from joygen.views import face_check_images, face_check_text

    pipe = server.STATE.pipeline
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
        notes[face_tab] = note("error", f"The {FACE_TAB_NAMES[face_tab]} tab holds nothing to check yet.")
        return *failed, notes["video"], notes["photo"], gr.skip()
    try:
        images, line, index = run_check(face, None if first_face else int(frame), dict(zip(FACE_CONTROLS, face_values)))
    except Exception as exc:  # noqa: BLE001 - said beside the face
        notes[face_tab] = note("error", message(exc, upload_names(face)))
        return *failed, notes["video"], notes["photo"], gr.skip()
    line = f"**{shown_name(face)}** ({FACE_TAB_NAMES[face_tab]} tab): {line}"
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
        raise gr.Error(message(exc, upload_names(video)), duration=None) from None
    return images, line


# -- checks on upload --------------------------------------------------------------------------------------


def _face_check(path: str) -> tuple[tuple[str, str], object]:
    """``((level, text), frame slider update)`` for a face file that just arrived."""
    from joygen.face_check import SCAN_BATCH
    from joygen.media import check_video

    try:
        info = check_video(path, server.config())
        found = searched = None
        if server.STATE.pipeline is not None:
            found, searched = _first_face(path), (1 if info.still_image else SCAN_BATCH)
    except Exception as exc:  # noqa: BLE001 - said beside the input
        return ("error", message(exc, upload_names(path))), gr.skip()
    last = max(1, (info.estimated_frames or 1) - 1)
    return face_note(shown_name(path), info, found, searched), gr.update(maximum=last, value=0)


@gpu(seconds=20)
def _first_face(path: str) -> int | None:
    """The first of the first frames with a face (the face detector runs where the models are)."""
    from joygen.face_check import first_face_frame

    return first_face_frame(server.STATE.pipeline, path)


def _voice_check(path: str) -> tuple[str, str]:
    """``(level, text)`` for a voice file that just arrived."""
    import numpy as np

    from joygen.media import check_audio, load_audio
    from joygen.trajectory import loudness

    try:
        info = check_audio(path, server.config())
        wav = load_audio(path, info=info)
        peak = float(np.max(loudness(wav, max(1, len(wav) // 640))["loudness_db"]))
    except Exception as exc:  # noqa: BLE001 - said beside the input
        return "error", message(exc, upload_names(path))
    return voice_note(shown_name(path), info, peak)


def on_face(path, tab: str):
    """A face arrived in (or left) a tab: check it and select that tab."""
    if not path:
        return "", gr.skip(), gr.skip(), gr.skip()
    found, slider = _face_check(path)
    return note(*found), gr.Tabs(selected=tab), tab, slider


def on_voice(path, tab: str):
    """A voice arrived in (or left) a tab: check it and select that tab."""
    if not path:
        return "", gr.skip(), gr.skip()
    return note(*_voice_check(path)), gr.Tabs(selected=tab), tab


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
            f"{shown_name(path)} is a sound file with no pictures: it belongs in the voice box below. For the face, give "
            "a video (mp4, mov, webm, ...) or a photo (png, jpg, webp)."
        )
    except Exception as exc:  # noqa: BLE001 - said beside the input
        info, problem = None, message(exc, upload_names(path))
    if info is not None and info.video is not None:
        return (None, skip, path, skip, skip) if info.still_image else (None, path, skip, skip, skip)
    notes = [skip, skip]
    notes[0 if face_tab == "video" else 1] = note("error", problem)
    return None, skip, skip, *notes


def on_too_big(event: str):
    """A file over the upload limit, named by the page before uploading it: said beside its box."""

    if not event:
        return (gr.skip(),) * 4
    try:
        found = json.loads(event)
        said = note(*too_big_note(str(found["name"]), int(found["size"]), int(found["limit"])))
        box = ["video", "photo", "audio", "voice_file"].index(found["box"])
    except (ValueError, KeyError, TypeError):
        return (gr.skip(),) * 4
    return tuple(said if k == box else gr.skip() for k in range(4))


def on_voice_other(path):
    """A file the browser would not take as audio (a video with sound, say): it goes to the "any file" tab."""
    if not path:
        return gr.skip(), gr.skip(), gr.skip()
    level, text = _voice_check(path)
    if level == "error":
        return None, gr.skip(), note(level, text)
    return None, path, gr.skip()
