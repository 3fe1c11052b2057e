"""The wheel, installed as a user would (not editable): it must carry everything the commands read.

Builds the wheel from this checkout, installs it without dependencies into a fresh venv that borrows the
test environment's packages (a .pth line: numpy, onnxruntime, torch, ... -- not denoise, whose editable
finder is not loaded that way), and runs `denoise info` and `denoise export` from there.
"""

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from conftest import REPO


def test_installed_wheel_exports_and_reports_the_bundled_model(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("denoise-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("default.onnx", "default.fp16.onnx", "default.json", "default.pt", "estimator.onnx",
                 "estimator.json", "estimator.pt"):
        assert f"denoise/weights/{name}" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr

    where = subprocess.run([str(python), "-c", "import denoise; print(denoise.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path)
    assert str(site) in where.stdout, where.stdout + where.stderr  # the wheel's copy, not the checkout
    info = subprocess.run([str(venv / "bin" / "denoise"), "info", "--json"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["bundled_model"]["exists"] and report["bundled_model"]["path"].startswith(str(site))
    export = subprocess.run([str(venv / "bin" / "denoise"), "export", "--out", str(tmp_path / "exported")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert export.returncode == 0, export.stderr
    assert (tmp_path / "exported" / "model.onnx").is_file() and "FAILED" not in export.stdout
