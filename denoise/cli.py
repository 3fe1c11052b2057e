"""The ``denoise`` command line: parses options, calls the library, maps errors to exit codes.

Exit codes: 0 all done; 1 fatal error (one line on stderr, no traceback); 2 usage error (Click's
own); 3 finished, but some inputs failed (each named on stderr and in the manifest).

This module is the group alone (options every command takes, the entry point, the list of commands); each
command is a module of denoise/commands/, and what they share is denoise/commands/common.py.
"""

from __future__ import annotations

import logging
import sys

import click

from denoise import __version__
from denoise.commands.batch import batch
from denoise.commands.eval import eval_command
from denoise.commands.export import export
from denoise.commands.info import info
from denoise.commands.manifest import manifest
from denoise.commands.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="denoise")
@click.option("-v", "--verbose", is_flag=True, help="Log backend choices and other details.")
def main(verbose: bool):
    """Remove the noise from photos, a folder at a time; the noise level is estimated per image.

    \b
    Example:
      denoise batch ./camera-photos ./clean
      denoise batch ./noisy ./clean --sigma 25/255     # a known white-noise level
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="denoise: %(message)s")
    from denoise.image_files import allow_megapixels, max_megapixels

    allow_megapixels(max_megapixels())  # this process is ours: Pillow may open what DENOISE_MAX_MEGAPIXELS allows


def run():
    """Console entry point: like ``main()``, but a usage error is one line on stderr (exit code 2)."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `denoise`: the help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        sys.exit(2)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "denoise"
        click.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("denoise: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"denoise: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)


main.add_command(batch)
main.add_command(manifest)
main.add_command(train)
main.add_command(export)
main.add_command(eval_command)
main.add_command(info)
