"""The folder job behind ``denoise batch``: every image under IN denoised into OUT, nothing lost.

* Inputs are never written: OUT may not be IN, inside IN, or contain IN.
* Each output goes to a temporary name and is renamed into place, so an existing output is complete:
  a re-run skips it (``overwrite=True`` redoes it) and picks up where a killed run stopped.
* A file that fails is recorded and the run goes on.
* The manifest is JSON Lines, one object per input, appended and flushed as the run goes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from denoise.errors import DenoiseError
from denoise.metrics import to_uint8
from denoise.runtime.images import IMAGE_SUFFIXES, read_image, to_pil, write_image_atomic

MANIFEST_NAME = "denoise-manifest.jsonl"


@dataclass
class BatchSummary:
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input path, error)
    manifest: str = ""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when every input is done (or was already done), 3 when some failed (DESIGN.md)."""
        return 3 if self.failed else 0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "skipped": self.skipped, "failed": self.failed,
                "failures": [{"path": p, "error": e} for p, e in self.failures],
                "manifest": self.manifest, "seconds": round(self.seconds, 3), "exit_code": self.exit_code}


def check_folders(input_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """Resolve both folders and refuse any layout where an output could land on an input."""
    if not input_dir.exists():
        raise DenoiseError(f"input folder {input_dir} does not exist")
    if not input_dir.is_dir():
        raise DenoiseError(f"input {input_dir} is not a folder; give a folder of images")
    src, dst = input_dir.resolve(), output_dir.resolve()
    if src == dst:
        raise DenoiseError(f"output folder {output_dir} is the input folder; choose a separate output folder")
    if src in dst.parents:
        raise DenoiseError(f"output folder {output_dir} is inside the input folder; choose a folder outside it")
    if dst in src.parents:
        raise DenoiseError(f"input folder {input_dir} is inside the output folder; choose a folder outside it")
    if dst.exists() and not dst.is_dir():
        raise DenoiseError(f"output {output_dir} exists and is not a folder")
    return src, dst


def list_inputs(input_dir: Path) -> list[Path]:
    """Every regular file under ``input_dir`` (recursive, sorted, hidden files left out)."""
    files = [p for p in input_dir.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(input_dir).parts)]
    return sorted(files)


def run_batch(denoiser, input_dir: Path, output_dir: Path, sigma, overwrite: bool = False,
              manifest_path: Path | None = None, jpeg_quality: int = 95,
              on_file: Callable[[dict], None] | None = None) -> BatchSummary:
    """Denoise every image under ``input_dir`` into the mirrored tree under ``output_dir``."""
    src, dst = check_folders(Path(input_dir), Path(output_dir))
    if sigma != "auto":
        denoiser.check_sigma(float(sigma))
    dst.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(manifest_path) if manifest_path else dst / MANIFEST_NAME
    summary = BatchSummary(manifest=str(manifest_path))
    start = time.perf_counter()
    with open(manifest_path, "a", encoding="utf-8") as manifest:
        for path in list_inputs(src):
            record = process_file(denoiser, path, dst / path.relative_to(src), sigma, overwrite, jpeg_quality)
            record["backend"] = denoiser.backend_name
            manifest.write(json.dumps(record) + "\n")
            manifest.flush()
            status = record["status"]
            setattr(summary, status, getattr(summary, status) + 1)
            if status == "failed":
                summary.failures.append((record["path"], record["error"]))
            if on_file:
                on_file(record)
    summary.seconds = time.perf_counter() - start
    return summary


def process_file(denoiser, path: Path, out_path: Path, sigma, overwrite: bool, jpeg_quality: int) -> dict:
    """Denoise one file; returns its manifest record (never raises for a bad input)."""
    record = {"path": str(path), "output": str(out_path), "status": "ok", "error": None, "sigma": None}
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        record.update(status="skipped", output=None, error=f"not an image file type ({path.suffix or 'no extension'})")
        return record
    if out_path.exists() and not overwrite:
        record.update(status="skipped", error="output already exists (use --overwrite to redo)")
        return record
    t0 = time.perf_counter()
    try:
        image = read_image(path)
        t1 = time.perf_counter()
        level = denoiser.resolve_sigma(sigma, image.rgb)
        result = denoiser.denoise_rgb(image.rgb, level)
        t2 = time.perf_counter()
        write_image_atomic(to_pil(to_uint8(result), image.mode, image.alpha), out_path, image.save_info, jpeg_quality)
        t3 = time.perf_counter()
    except DenoiseError as exc:
        record.update(status="failed", output=None, error=str(exc))
        return record
    except OSError as exc:  # e.g. disk full or permission denied while writing this one output
        record.update(status="failed", output=None, error=f"{out_path}: cannot write ({exc})")
        return record
    record.update(sigma=round(level, 6), timings={"read": round(t1 - t0, 4), "denoise": round(t2 - t1, 4),
                                                  "write": round(t3 - t2, 4)})
    return record
