"""The one exception type the CLI turns into a one-line message and exit code 2."""


class SpeakError(Exception):
    """A user-facing error: bad input, bad config, unreadable or corrupted file."""
