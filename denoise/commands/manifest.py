"""`denoise manifest`: the JSON Lines manifests that `denoise batch` writes (`manifest merge`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from denoise.commands.common import user_errors


@click.group()
def manifest():
    """Work with the JSON Lines manifests that `denoise batch` writes."""


@manifest.command(name="merge")
@click.argument("input_dir", type=click.Path(path_type=Path))
@click.argument("output_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@user_errors
def manifest_merge(input_dir, output_dir, as_json):
    """Combine the manifests in OUTPUT_DIR (e.g. of shards) and check them against INPUT_DIR.

    Writes OUTPUT_DIR/denoise-manifest.merged.jsonl and reports inputs that no run finished, that
    failed, or that were done twice. Exit code 0 when complete, 3 when not.

    \b
    Example:
      for k in 1 2 3; do denoise batch ./in ./out --sigma 0.1 --shard $k/3; done
      denoise manifest merge ./in ./out
    """
    from denoise.job.shards import merge_manifests

    report = merge_manifests(input_dir, output_dir)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo(f"{report.done} of {report.inputs} inputs done, from {len(report.manifests)} manifest(s)")
        for label, paths in (("missing", report.missing), ("failed", report.failed), ("done twice", report.done_twice)):
            for path in paths:
                click.echo(f"{label}: {path}")
    sys.exit(0 if report.complete else 3)
