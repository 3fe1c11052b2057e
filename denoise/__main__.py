"""``python -m denoise`` is the ``denoise`` command."""

from denoise.cli import run

run()
