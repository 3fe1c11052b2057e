"""The two exception types: problems a user can cause and fix, and faults of the machine or backend.

``DenoiseError``: a bad path, a bad sigma, a missing extra. The CLI turns it into a one-line message and
exit code 1; in a batch it fails that one file. Library code raises it and never exits.

``BackendFault``: a failed CUDA call, a TensorRT execution error, an ONNX Runtime run that raised -- nothing
the user's input caused or can fix. A batch records it per file (with its traceback in the log, shown with
``-v``) and stops after a few in a row, since a sticky CUDA error would fail every remaining file; at start-up
``--backend auto`` skips a backend that raises it.
"""


class DenoiseError(Exception):
    """A problem the user can fix; the message says what to do."""


class BackendFault(Exception):
    """A fault of the backend or the machine (CUDA, TensorRT, ONNX Runtime), not of the user's input."""


class Stopped(Exception):
    """A stop was asked (a signal) while an image was under way: its work is abandoned, nothing is written
    and nothing recorded for it, so a re-run does it."""


def missing_extra(package: str, extra: str) -> DenoiseError:
    return DenoiseError(f"{package} is not installed; install it with: pip install 'denoise[{extra}]'")
