"""What the page says beside an input as soon as a file arrives: ``(level, text)``, level "ok", "warn" or
"error" (`webapp.parts.note` turns it into the page's note). Plain text; ``info`` is a `joygen.media.MediaInfo`."""

from __future__ import annotations

from joygen.timeline import FPS
from joygen.views import SILENCE_DB


def _media_facts(info) -> str:
    if info.still_image:
        return f"a {info.video.width}×{info.video.height} photo"
    length = f"{info.duration:.1f} s" if info.duration else "length unknown"
    if info.video is None:
        return f"{length} of sound"
    parts = [length, f"{info.video.width}×{info.video.height}"]
    if info.video.fps:
        parts.append(f"{info.video.fps:g} fps")
    parts.append("with sound" if info.audio is not None else "no sound")
    return ", ".join(parts)


def face_note(name: str, info, face_frame: int | None, searched: int | None) -> tuple[str, str]:
    """``(level, text)`` about an uploaded face file: "ok", "warn" or "error", and one line.

    ``face_frame``: the first frame with a face, None if none; ``searched``: how many frames were searched
    (None: no search, the models are not loaded).
    """
    facts = f"{name}: {_media_facts(info)}"
    if searched is None:
        return "ok", facts + "."
    if face_frame is not None:
        where = "a face found" if info.still_image else f"a face in frame {face_frame} ({face_frame / FPS:.2f} s)"
        return "ok", f"{facts}; {where}. Press “Check the face” to see what will be edited."
    if info.still_image:
        return "error", f"{facts}, but no face was found in it: joygen needs a clearly visible, roughly frontal face."
    return "warn", (
        f"{facts}, but no face in its first {searched} frames ({searched / FPS:.2f} s): those frames would pass "
        "through unedited. Pick a frame with a face and press “Check the face”."
    )


def voice_note(name: str, info, peak_db: float | None, how: str = "") -> tuple[str, str]:
    """``(level, text)`` about an uploaded voice file; ``peak_db``: its loudest 40 ms, None if not measured."""
    facts = f"{name}: {_media_facts(info)}"
    if info.video is not None and not info.still_image:
        facts += "; its sound is used as the voice"
    if peak_db is not None and peak_db <= SILENCE_DB:
        return "warn", f"{facts}, but it is silent (below {SILENCE_DB:g} dB): the mouth would stay still.{how}"
    return "ok", f"{facts}.{how}"


def too_big_note(name: str, size_bytes: int, limit_bytes: int) -> tuple[str, str]:
    """``(level, text)`` for a file over the upload limit (said before it is uploaded)."""
    mb = 1024 * 1024
    return "error", (
        f"{name} is {size_bytes / mb:.1f} MB; the largest upload here is {limit_bytes / mb:.1f} MB. "
        "Cut it shorter or compress it."
    )
