"""The one exception type that reaches users.

Anything a user can get wrong (a path, a file, a config key, a value) raises
:class:`MedclError` with one sentence that names the culprit and says what to do. The
command line prints that sentence and exits with status 2; programming errors still raise
their usual exceptions with a traceback, because those are ours to fix.

Two kinds of file problem have their own subclass, so that a stage can tell them apart:
:class:`DamagedFile` (cannot be parsed, is cut short, lacks a key, holds an impossible
value: a stage that wrote it recomputes it) and :class:`UnsafeFile` (a checkpoint that
would run code when loaded: always refused). An input image or mask that its reader cannot
parse is an :class:`UnreadableFile`, which a folder loader may skip (``data.on_unreadable``);
a file that parses but holds no image (a DICOM SEG or structured report) is a
:class:`NotAnImage`, which a folder loader always skips, with a note.
"""

from __future__ import annotations


class MedclError(Exception):
    """A problem with the user's input, explained in one sentence."""


class DamagedFile(MedclError):
    """A file of the run directory that cannot be used; ``reason`` says why, in a few words."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"'{path}' is damaged ({reason}); delete it, or rerun the command that wrote it "
            "with --fresh."
        )


class UnsafeFile(MedclError):
    """A checkpoint holding Python objects whose loading could run code."""


class UnreadableFile(MedclError):
    """An image or mask file its reader cannot parse; ``reason`` says why, in a few words."""

    def __init__(self, path: object, reason: str, message: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(message)


class NotAnImage(UnreadableFile):
    """A file that parses but holds no image to learn from (a DICOM SEG, RTSTRUCT, SR, ...).

    A folder loader skips such files whatever ``data.on_unreadable`` says, with one note;
    anywhere else (a single file, a mask) it is an unreadable file.
    """
