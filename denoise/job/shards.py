"""Deterministic shards of a folder, for array jobs (SLURM, Kubernetes indexed jobs), and merging
their manifests.

Shards count from 1 to N, as K/N does elsewhere (GNU ``split -n K/N``, Jest, Playwright; SLURM's
``--array=1-N``). A file belongs to shard ``int(sha256(relative path)) % N + 1``: stable across machines,
Python versions and runs, independent of listing order, and it needs no coordination, so N independent
jobs given ``--shard 1/N`` ... ``--shard N/N`` cover a folder exactly once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from denoise.errors import DenoiseError
from denoise.formats import is_input, list_inputs


@dataclass(frozen=True)
class Shard:
    number: int  # 1 to count
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'K/N' with 1 <= K <= N."""
        try:
            number, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise DenoiseError(f"--shard {text!r}: write K/N, e.g. 1/4 for the first of 4 shards") from None
        if count < 1:
            raise DenoiseError(f"--shard {text!r}: N must be at least 1")
        if number == 0:
            raise DenoiseError(f"--shard {text!r}: shards count from 1, so the first of {count} is 1/{count} "
                               f"and the last {count}/{count}")
        if not 1 <= number <= count:
            raise DenoiseError(f"--shard {text!r}: K must be 1 to N")
        return cls(number, count)

    def owns(self, relative_path: str) -> bool:
        digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.number - 1

    @property
    def suffix(self) -> str:
        return f"shard-{self.number}-of-{self.count}"


@dataclass
class MergeReport:
    inputs: int = 0
    done: int = 0
    failed: list[str] = field(default_factory=list)  # failed in their last attempt
    missing: list[str] = field(default_factory=list)  # no record at all
    done_twice: list[str] = field(default_factory=list)  # more than one "ok" record
    manifests: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.failed or self.missing or self.done_twice)

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "done": self.done, "failed": self.failed, "missing": self.missing,
                "done_twice": self.done_twice, "manifests": self.manifests, "complete": self.complete}


def merge_manifests(input_dir: Path, output_dir: Path, merged_path: Path | None = None) -> MergeReport:
    """Combine every ``denoise-manifest*.jsonl`` in OUT; report inputs of IN that no shard finished,
    that failed, or that were denoised more than once. Writes the last record of each input to
    ``merged_path`` (default OUT/denoise-manifest.merged.jsonl)."""
    manifests = sorted(p for p in Path(output_dir).glob("denoise-manifest*.jsonl") if "merged" not in p.name)
    if not manifests:
        raise DenoiseError(f"no denoise-manifest*.jsonl in {output_dir}: run denoise batch into it first")
    last: dict[str, dict] = {}
    ok_count: dict[str, int] = {}
    for manifest in manifests:
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a run killed mid-line leaves one partial line; its file is redone or skipped later
            path = str(Path(record["path"]).resolve())
            if record["status"] == "ok":
                ok_count[path] = ok_count.get(path, 0) + 1
            if record["status"] != "skipped" or path not in last:
                last[path] = record
    report = MergeReport(manifests=[str(m) for m in manifests])
    for source in list_inputs(Path(input_dir)):
        if not is_input(source):
            continue
        key = str(source.resolve())
        report.inputs += 1
        record = last.get(key)
        if record is None:
            report.missing.append(key)
        elif record["status"] == "failed":
            report.failed.append(key)
        else:
            report.done += 1
        if ok_count.get(key, 0) > 1:
            report.done_twice.append(key)
    merged_path = merged_path or Path(output_dir) / "denoise-manifest.merged.jsonl"
    merged_path.write_text("".join(json.dumps(r) + "\n" for r in last.values()), encoding="utf-8")
    return report
