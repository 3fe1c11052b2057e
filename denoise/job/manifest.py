"""The manifest and the summary: one JSON object per input, appended and flushed as the run goes, and the
counts a run ends with (and its exit code)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from denoise.job.plan import Job
from denoise.runtime.levels import level_summary

MANIFEST_NAME = "denoise-manifest.jsonl"


@dataclass
class BatchSummary:
    ok: int = 0
    redone: int = 0  # of ok: outputs made again because the settings changed (job.rerun)
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input path, error)
    manifest: str = ""
    seconds: float = 0.0
    megapixels: float = 0.0
    note: str = ""  # why there was nothing to do, when there was not
    stopped: str = ""  # why the run stopped before the end (backend faults), when it did
    interrupted: str = ""  # the signal that stopped it ("SIGTERM", "SIGINT"), when one did

    @property
    def exit_code(self) -> int:
        """0 when every input is done (or was already done), 3 when some failed, 1 when the run stopped on
        backend faults; 143 / 130 when SIGTERM / SIGINT stopped it (the shell's 128 + signal)."""
        if self.interrupted:
            return 128 + {"SIGTERM": 15, "SIGINT": 2}.get(self.interrupted, 15)
        return 1 if self.stopped else 3 if self.failed else 0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "redone": self.redone, "skipped": self.skipped, "failed": self.failed,
                "failures": [{"path": p, "error": e} for p, e in self.failures],
                "manifest": self.manifest, "seconds": round(self.seconds, 3),
                "megapixels": round(self.megapixels, 3), "exit_code": self.exit_code, "note": self.note,
                "stopped": self.stopped, "interrupted": self.interrupted}



def manifest_recorder(manifest, summary: BatchSummary, backend: str, on_file: Callable[[dict], None] | None,
                      settings: dict, redone: dict[str, str]) -> Callable[[dict], None]:
    """The one place a finished record goes: appended and flushed to the manifest, counted in the summary,
    then passed to ``on_file``. Records that already name their backend (Ray's) keep it. An ``ok`` record
    gets the run's settings, and ``redone`` (what changed) when it replaced an output made with others."""

    def finish(record: dict) -> None:
        record.setdefault("backend", backend)
        if record["status"] == "ok":
            record["settings"] = settings
            if record["output"] in redone:
                record["redone"] = f"settings changed: {redone[record['output']]}"
                summary.redone += 1
        manifest.write(json.dumps(record) + "\n")
        manifest.flush()
        status = record["status"]
        setattr(summary, status, getattr(summary, status) + 1)
        if status == "failed":
            summary.failures.append((record["path"], record["error"]))
        summary.megapixels += record.get("megapixels", 0.0)
        if on_file:
            on_file(record)

    return finish


def skipped_record(job: Job) -> dict:
    return {"path": str(job.source), "output": str(job.output) if job.output else None, "status": "skipped",
            "error": job.reason, "sigma": None}


def failed_record(job: Job, error: str) -> dict:
    return {"path": str(job.source), "output": None, "status": "failed", "error": error, "sigma": None}



def level_fields(levels: list, strength: float, estimated: bool, limits: tuple[float, float]) -> dict:
    """The manifest's account of the noise level the model was given (over every frame of the file):
    ``sigma`` its mean, ``sigma_min`` / ``sigma_max`` its range (equal for a number), ``strength``, whether
    it was estimated, and ``sigma_clamped`` where the strength took part of a map above the model's range."""
    seen = [level_summary(level, strength, limits) for level in levels]
    fields = {"sigma": round(float(np.mean([s["mean"] for s in seen])), 6),
              "sigma_min": round(min(s["min"] for s in seen), 6), "sigma_max": round(max(s["max"] for s in seen), 6),
              "strength": strength, "sigma_estimated": estimated}
    if any(s["clamped"] for s in seen):
        fields["sigma_clamped"] = True
    return fields
