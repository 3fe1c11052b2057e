"""Issue 27's RAW gain: the four DNGs tests/test_raw.py generates (two Bayer phases, sigma 0.05 and 0.1) through
`denoise batch` with its defaults, and each output's PSNR gain (dB) over the undenoised development, both against the
same mosaic developed without noise -- what the test asserts (more than 2.5 dB), printed per file.

    python benchmarks/raw_gain.py                                  # the bundled model, --precision auto
    python benchmarks/raw_gain.py --precision fp32 --model other.onnx

Extra arguments go to `denoise batch`. The DNG writer and the development are the test's own (imported from
tests/test_raw.py), so the figures are the test's.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import tifffile  # noqa: E402
from test_raw import develop, gain_test_raws, psnr16  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "raws", Path(tmp) / "out"
        references = gain_test_raws(src, Path(tmp) / "clean")
        result = subprocess.run([sys.executable, "-m", "denoise", "batch", str(src), str(out), "--backend", "cpu",
                                 *sys.argv[1:]], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(result.stderr)
        for name, reference in references.items():
            gain = psnr16(reference, tifffile.imread(out / f"{name}.tif")) - psnr16(reference, develop(src / f"{name}.dng"))
            print(f"{name}: {gain:+.2f} dB")

if __name__ == "__main__":
    main()
