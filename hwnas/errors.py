"""User-facing errors.

Every problem a user can fix (bad input, missing phone, wrong table) is raised as an
``HwnasError`` whose message is one line naming the problem and the fix, so the CLI can
print it and exit non-zero without a traceback.
"""


class HwnasError(Exception):
    """An error caused by the user's input or environment, with a one-line message."""

    exit_code = 2


class SkippedCheckpointWarning(UserWarning):
    """A run folder's newest checkpoint was damaged and an earlier one is used instead
    (search and export show it as a warning line; never a silent fallback)."""
