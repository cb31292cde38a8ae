"""The one exception type for the user's mistakes (bad file, bad AOI, bad prompt)."""


class RsappError(Exception):
    """A problem the user can act on; the CLI and the UI show its message, never a traceback."""
