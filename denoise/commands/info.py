"""`denoise info`: prints the report of denoise/info.py (versions, backends, the bundled models' cards)."""

from __future__ import annotations

import json

import click

from denoise.commands.common import user_errors


def photo_sigma_note(stage: dict) -> str:
    top = stage.get("folder_sigma_max")
    return f" (photo batches at sigma <= {top:g})" if top else ""


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def info(as_json):
    """Show versions, available backends and the bundled model's card.

    \b
    Example:
      denoise info --json
    """
    from denoise.info import machine_report

    report = machine_report()
    providers, engines, machine_note = report["onnxruntime_providers"], report["engine_cache"]["engines"], report["tensorrt"]

    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"denoise {report['denoise']} on Python {report['python']} ({report['platform']})")
    for name, ver in report["packages"].items():
        click.echo(f"  {name:<16} {ver or '-'}")
    click.echo(f"ONNX Runtime providers available: {', '.join(providers) or 'none (install denoise[cpu])'}")
    click.echo("  note: the CUDA provider is only used if a session really obtains it (checked at run time)")
    click.echo(f"TensorRT: {machine_note}")
    raw = report["raw"]
    suffixes = " ".join(suffix.lstrip(".").upper() for suffix in raw["suffixes"])
    click.echo(f"camera RAW ({suffixes}): " + (f"LibRaw {raw['libraw']} through rawpy" if raw["libraw"]
               else "not installed (pip install 'denoise[raw]')"))
    click.echo(f"PyTorch backend (--backend torch): {'possible here (torch installed, an NVIDIA device present)' if report['backends']['torch'] else 'not here (needs torch with CUDA and an NVIDIA GPU)'}")
    int8 = report["cpu_int8"]
    click.echo(f"CPU precision (--precision auto): {int8['auto_runs'].upper()} -- {int8['why']}")
    click.echo(f"engine cache {report['engine_cache']['path']}: {len(engines)} engine(s)")
    for engine in engines:
        match = {True: "matches this machine", False: "does NOT match this machine",
                 None: "cannot tell here"}[engine["matches_this_machine"]]
        click.echo(f"  {engine['path']}: {engine['precision']} for {engine['gpu']}, TensorRT {engine['tensorrt']}, "
                   f"built {engine['built']} -- {match}")
    card = report["bundled_model"]["card"]
    click.echo(f"bundled model: {report['bundled_model']['path']}")
    if card:
        training = card.get("training", {})
        click.echo(f"  {card.get('architecture')} '{card.get('model_name')}', sigma range {card.get('sigma_range')}, "
                   f"{card.get('noise_protocol')} noise")
        click.echo(f"  trained on {card.get('training_data')}: {training.get('steps')} steps, "
                   f"{training.get('minutes')} min on {training.get('device')}{photo_sigma_note(training)}")
        average = card.get("weight_average")
        if average:  # denoise.checkpoint.average_checkpoints: the line above is the fine-tune's run
            share = average.get("tuned_weight")
            click.echo(f"  weights: {1 - share:g} x the model below + {share:g} x its fine-tune above "
                       f"(step {average.get('tuned_steps')}), averaged weight by weight")
        stage = training.get("fine_tuned_from")
        while stage:  # earlier stages, newest first (a model trained with --init)
            click.echo(f"    fine-tuned from: {stage.get('steps')} steps, {stage.get('minutes')} min on {stage.get('device')}, "
                       f"{stage.get('protocol', 'clip')} noise{photo_sigma_note(stage)}, {stage.get('data')}")
            stage = stage.get("fine_tuned_from")
        scores = card.get("validation_psnr_db") or {}
        click.echo("  validation PSNR (dB): " + (", ".join(f"sigma {k}: {v:.2f}" for k, v in scores.items())
                                                 or ("none: a weight average, which no training run validated (BENCHMARKS.md measures it)"
                                                     if average else "none recorded")))
    raw_card = report["bundled_raw_model"]["card"]
    if raw_card:
        click.echo(f"RAW model (camera RAWs whose mosaic is fitted, --sigma auto): {report['bundled_raw_model']['path']}, "
                   f"{(report['bundled_raw_model']['cpu_int8'] or {}).get('auto_runs', 'fp32').upper()} on this CPU, "
                   f"fine-tuned from the model above on {raw_card.get('training_data')}, "
                   f"{raw_card.get('training', {}).get('steps')} steps")
    estimator = report["bundled_estimator"]["card"]
    if estimator:
        errors = estimator.get("validation_level_error_db") or {}
        click.echo(f"noise estimator (--sigma auto): {report['bundled_estimator']['path']}, receptive radius {estimator.get('receptive_radius')} px, "
                   f"trained on {estimator.get('training_data')}")
        click.echo("  validation level error (dB): " + ", ".join(f"{k}: {v:.2f}" for k, v in errors.items()))
        calibration = estimator.get("calibration")
        click.echo("  calibration: " + (f"white-noise reads above {calibration['read'][1] * 255:.1f}/255 mapped back to the true level, "
                                        f"fitted on {calibration.get('fitted_on')} (scripts/calibrate_estimator.py)"
                                        if calibration else "none (the map is the estimator's own)"))
