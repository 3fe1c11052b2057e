"""The options of a folder job, one object for the local path, shards and Ray alike; and the engine's, for a
job that makes its own engines (each Ray actor makes one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from denoise.errors import DenoiseError
from denoise.formats import OUTPUT_SUFFIXES
from denoise.job.shards import Shard
from denoise.runtime.levels import check_strength
from denoise.runtime.tiling import DEFAULT_MAX_BATCH, DEFAULT_TILE
from denoise.weights import DEFAULT_ESTIMATOR, DEFAULT_MODEL


@dataclass(frozen=True)
class JobOptions:
    """How a folder job runs. ``sigma``: a number or "auto" (estimated per image); ``strength`` scales the level
    either way; ``fmt``: the outputs' format (None: the input's); ``manifest_path``: None for the default
    (OUT/denoise-manifest.jsonl, none for one file written to a named file)."""

    sigma: float | str = "auto"
    strength: float = 1.0
    overwrite: bool = False
    jpeg_quality: int = 95
    pattern: str = "*"
    follow_symlinks: bool = False
    fmt: str | None = None
    manifest_path: Path | None = None
    dry_run: bool = False
    shard: Shard | None = None

    def __post_init__(self):
        if self.fmt and "." + self.fmt.lower().lstrip(".") not in OUTPUT_SUFFIXES:
            raise DenoiseError(f"unknown output format {self.fmt!r}; choose one of {', '.join(sorted(OUTPUT_SUFFIXES))}")
        object.__setattr__(self, "strength", check_strength(self.strength))

    @property
    def estimated(self) -> bool:
        return isinstance(self.sigma, str) and self.sigma == "auto"


@dataclass(frozen=True)
class EngineOptions:
    """What a ``runtime.Denoiser`` is made with (its arguments, by name): the local path makes one, each Ray actor
    its own. None for the model or the estimator: the bundled one."""

    model: str | None = None
    backend: str = "auto"
    precision: str = "auto"
    estimator: str | None = None
    tile: int = DEFAULT_TILE
    max_batch: int = DEFAULT_MAX_BATCH
    ensemble: bool = False

    @property
    def model_path(self) -> Path:
        return Path(self.model) if self.model else DEFAULT_MODEL

    @property
    def estimator_path(self) -> Path:
        return Path(self.estimator) if self.estimator else DEFAULT_ESTIMATOR

    def check_files(self) -> None:
        """Before any engine is made (a Ray worker's failure would be a traceback far away)."""
        for kind, path in (("model file", self.model), ("noise estimator", self.estimator)):
            if path and not Path(path).is_file():
                raise DenoiseError(f"{kind} {path} does not exist; pass an exported .onnx file")
