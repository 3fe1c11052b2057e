"""The one exception type for problems a user can cause and fix (bad path, bad sigma, missing extra).

The CLI turns it into a one-line message and exit code 1; library code raises it and never exits.
"""


class DenoiseError(Exception):
    """A problem the user can fix; the message says what to do."""


def missing_extra(package: str, extra: str) -> DenoiseError:
    return DenoiseError(f"{package} is not installed; install it with: pip install 'denoise[{extra}]'")
