"""What shaped an output, and whether a re-run must redo it.

Every ``ok`` record in the manifest carries the settings that shape its output (``settings``: the model file's
sha256, the sigma asked for -- a number or "auto", and then the estimator's sha256 --, the strength, the
precision asked for and the ensemble flag). Tiling does not shape it: tiles equal the whole image.

A re-run skips an existing output only when the manifest's last record of it has the same settings. When
they differ, the file is redone and the old output replaced atomically -- the user changed a knob to see what
it does, and a skip would show the old image as if the knob did nothing. Refusing would only send the user to
``--overwrite``, which redoes every file, the unchanged ones too. An output the manifest has no settings for
(a file that was there before, a manifest from before settings were recorded, a run without a manifest) is
skipped as before: it may not be ours to replace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from denoise.job.options import EngineOptions, JobOptions
from denoise.model_files import sha256_file

SETTINGS_KEYS = ("model_sha256", "sigma", "estimator_sha256", "strength", "precision", "ensemble")


def output_settings(engine: EngineOptions, job: JobOptions) -> dict:
    """The settings a run's outputs are made with (what the manifest records, what a re-run compares)."""
    estimator = engine.estimator_path
    estimator_sha = sha256_file(estimator) if job.estimated and estimator.is_file() else None
    return {"model_sha256": sha256_file(engine.model_path), "sigma": "auto" if job.estimated else round(float(job.sigma), 6),
            "estimator_sha256": estimator_sha, "strength": float(job.strength), "precision": engine.precision,
            "ensemble": bool(engine.ensemble)}


def describe_change(before: dict, now: dict) -> str:
    """``"strength 1 -> 1.5, sigma auto -> 0.1"``: the settings that differ ("" when none)."""
    changes = []
    for key in SETTINGS_KEYS:
        old, new = before.get(key), now.get(key)
        if old != new:
            if key.endswith("sha256"):
                changes.append(f"{key.removesuffix('_sha256')} file changed")
            else:
                changes.append(f"{key} {old} -> {new}")
    return ", ".join(changes)


@dataclass
class EarlierOutputs:
    """The settings each output was last made with, from the manifest a run appends to."""

    settings: dict  # this run's
    # output path -> the settings of its last ok record. Paths as the records hold them: absolute, under the resolved
    # output folder, exactly as the planner builds them (job.plan), so no resolving is needed to match.
    made_with: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def read(cls, manifest_path: Path | None, settings: dict) -> "EarlierOutputs":
        earlier = cls(settings)
        if manifest_path is None or not Path(manifest_path).is_file():
            return earlier
        with open(manifest_path, encoding="utf-8", errors="replace") as manifest:
            for line in manifest:
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut short by a killed run
                    continue
                if isinstance(record, dict) and record.get("status") == "ok" and record.get("output"):
                    earlier.made_with[record["output"]] = record.get("settings")
        return earlier

    def changed(self, output: Path) -> str:
        """What differs between this run's settings and those ``output`` was made with; "" when nothing does or
        they are not known (then it is skipped)."""
        before = self.made_with.get(str(output))
        return describe_change(before, self.settings) if before else ""
