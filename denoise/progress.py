"""The one progress bar, for `denoise batch` (files) and `denoise train` (steps): tqdm on a terminal, on
stderr; nothing when stderr is not a terminal (the commands print log lines instead)."""

from __future__ import annotations

import sys


class ProgressBar:
    def __init__(self, unit: str, enabled: bool | None = None):
        self.unit = unit
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None

    def start(self, total: int, initial: int = 0) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit=self.unit, dynamic_ncols=True, file=sys.stderr)

    @property
    def active(self) -> bool:
        return self.bar is not None

    @property
    def elapsed(self) -> float:
        return (self.bar.format_dict["elapsed"] or 1e-9) if self.bar else 0.0

    def update(self, postfix: str = "") -> None:
        if self.bar:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar:
            self.bar.close()
