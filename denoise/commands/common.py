"""What the commands share: the parameter types, the error mapping, the stop on signals, the engine options."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from denoise.errors import BackendFault, DenoiseError
from denoise.noise import parse_sigma
from denoise.runtime.backends import BACKENDS
from denoise.runtime.precision import PRECISIONS


class SigmaType(click.ParamType):
    """A noise level on [0,1] ("0.3"), a fraction ("25/255"), or "auto" where allowed."""

    name = "sigma"

    def __init__(self, allow_auto: bool = True):
        self.allow_auto = allow_auto

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        if self.allow_auto and str(value).strip().lower() == "auto":
            return "auto"
        try:
            sigma = parse_sigma(value)
        except DenoiseError as exc:
            self.fail(str(exc), param, ctx)
        if sigma > 1.0:
            self.fail(f"{value} is above 1: sigma is on the [0,1] scale (write 25/255 for 25 on the 0-255 scale)",
                      param, ctx)
        return sigma


class StrengthType(click.ParamType):
    """A factor above 0 that scales the noise level (``--strength``)."""

    name = "factor"

    def convert(self, value, param, ctx):
        from denoise.runtime.levels import check_strength

        try:
            return check_strength(value)
        except DenoiseError as exc:
            self.fail(str(exc), param, ctx)


class StopSignals:
    """While a batch runs: the first SIGTERM or SIGINT (schedulers stop jobs with SIGTERM, then SIGKILL after a
    grace period) asks the run to stop at the next batch of tiles: the image under way is abandoned (a re-run
    does it) and the writes under way finish; a second one stops at once (the next run removes a temporary
    file it may leave). ``received()``: the first signal's name or "".

    Python runs signal handlers in the main thread only, between bytecodes: a main thread inside ONNX
    Runtime's run hears a signal only when the run returns, and two signals during one run as one. So the
    job runs in another thread (``run``) while the main thread waits, and hears every signal at once."""

    def __init__(self):
        self.name, self.previous = "", {}

    def received(self) -> str:
        return self.name

    def _handle(self, signum, frame):
        if self.name:
            os._exit(128 + signum)
        self.name = signal.Signals(signum).name
        click.echo(f"denoise: {self.name}: stopping after the tiles being denoised; the image under way is left for a "
                   "re-run, files being written finish (send it again to stop at once)", err=True)

    @staticmethod
    def run(call):
        """``call()`` in a worker thread, its result or its exception here, while this (main) thread waits."""
        outcome = {}

        def target():
            try:
                outcome["result"] = call()
            except BaseException as exc:  # noqa: BLE001 -- re-raised in the main thread below
                outcome["error"] = exc

        worker = threading.Thread(target=target, name="batch", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        if self.name:  # stopping: a second signal while the summary is printed still exits at once, with 128 + signum
            # (or, once the interpreter is shutting down and CPython has put the default handlers back, by the signal)
            return
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def user_errors(command):
    """Turn DenoiseError, OSError and BackendFault into a one-line message and exit code 1; Ctrl-C into 130.
    (An OSError that one input causes is recorded per file by the batch job and never reaches here.)"""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DenoiseError as exc:
            click.echo(f"denoise: error: {exc}", err=True)
            sys.exit(1)
        except BrokenPipeError:  # `denoise info | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
            sys.exit(0)
        except OSError as exc:  # the machine's, not ours: a full disk, a permission, a vanished folder
            click.echo(f"denoise: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), err=True)
            sys.exit(1)
        except BackendFault as exc:  # the backend's or the GPU's, not the input's: traceback with -v
            logging.getLogger("denoise").info("backend fault", exc_info=exc)
            click.echo(f"denoise: error: backend fault: {exc} (-v shows the traceback)", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("denoise: interrupted", err=True)
            sys.exit(130)

    return wrapper


def strength_option(help_text: str):
    """--strength, with the help its command gives it."""
    return click.option("--strength", type=StrengthType(), default=1.0, show_default=True, help=help_text)


ENGINE_OPTIONS = (
    click.option("--model", type=click.Path(path_type=Path), default=None, help="An exported .onnx model (default: bundled)."),
    click.option("--estimator", type=click.Path(path_type=Path), default=None,
                 help="The noise estimator .onnx of --sigma auto (default: bundled)."),
    click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                 help="auto: the first of tensorrt, cuda, torch, cpu that works here (-v says why others were skipped)."),
    click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                 help="Of the CPU model: auto runs INT8 where this CPU has AVX2, VNNI, AMX or Arm's dot product and the "
                      "model has an INT8 version, else FP32 (GPUs run FP16); `denoise info` says which and why."),
)


def engine_options(command):
    """--model, --estimator, --backend and --precision (in this order): the engine that `batch` and `eval` run."""
    for option in reversed(ENGINE_OPTIONS):
        command = option(command)
    return command
