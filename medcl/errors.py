"""The one exception type that reaches users.

Anything a user can get wrong (a path, a file, a config key, a value) raises
:class:`MedclError` with one sentence that names the culprit and says what to do. The
command line prints that sentence and exits with status 2; programming errors still raise
their usual exceptions with a traceback, because those are ours to fix.
"""

from __future__ import annotations


class MedclError(Exception):
    """A problem with the user's input, explained in one sentence."""
