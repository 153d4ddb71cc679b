"""The exceptions joygen raises for problems a user can fix.

Every message names the file (or frames, or weights) concerned and says what to change. The CLI prints
them without a traceback; the app shows them as a dialog. Anything else that escapes is a bug.
"""

from __future__ import annotations


class JoyGenError(Exception):
    """Base class: a problem with the user's input, weights or environment, explained in the message."""


class InputError(JoyGenError, ValueError):
    """A video, image or audio file that cannot be used (missing, empty, unreadable, no stream, too long)."""


class NoFaceError(InputError):
    """No frame of the video shows a face the detector can find."""


class WeightsError(JoyGenError, FileNotFoundError):
    """Model weights are missing, incomplete or not in the expected layout."""


class FFmpegError(JoyGenError, RuntimeError):
    """ffmpeg failed on a file; the message carries the tail of its error output."""


class ConfigError(JoyGenError, ValueError):
    """A setting with a value it does not accept; ``option`` is its flat name (``crf``, ``batch_size``, ...)."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


class Cancelled(JoyGenError):
    """The run was stopped on request (a cancelled app job, SIGTERM); what it had written is removed."""


class OutputError(JoyGenError):
    """An output cannot be written where asked (a folder, no permission, no space); the message names it."""
