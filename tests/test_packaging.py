"""chemtomo installs beside the current HyperSpy, exSpy and napari (issue 10).

pyproject.toml gives ranges, not pins, so that a microscopist's environment can hold chemtomo
together with the tools they already use. This test asks pip, in a fresh virtual environment
and without constraints.txt, to resolve ``chemtomo[all]`` with the latest releases of
hyperspy, exspy and napari (``pip install --dry-run``: nothing is installed). It needs the
package index; it is skipped only when a probe download fails with a network error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

REPO = Path(__file__).resolve().parents[1]
COMPANIONS = ("hyperspy", "exspy", "napari")
NETWORK_ERRORS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "Could not fetch URL",
)


def _pip(python: Path, *args: str, timeout_s: float) -> subprocess.CompletedProcess:
    """Run ``python -m pip ARGS`` and return the completed process (output captured as text)."""
    return subprocess.run(
        [str(python), "-m", "pip", *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _latest_releases(python: Path, dest: Path) -> dict[str, str]:
    """Return the newest release of each companion package, downloading it without dependencies.

    The download is also the probe of the package index: a failure with a network error skips
    the test, any other failure fails it.
    """
    proc = _pip(python, "download", "--no-deps", "--no-cache-dir", "--retries", "1", "--timeout", "20",
                "-d", str(dest), *COMPANIONS, timeout_s=300)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        if any(marker in output for marker in NETWORK_ERRORS):
            pytest.skip("the package index is unreachable (pip download failed with a network error)")
        pytest.fail(f"pip download of {COMPANIONS} failed:\n{output[-4000:]}")
    versions = {}
    for path in dest.iterdir():
        if path.name.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(path.name)
        else:
            name, version = parse_sdist_filename(path.name)
        versions[str(canonicalize_name(name))] = str(version)
    assert set(versions) == set(COMPANIONS), versions
    return versions


def _copy_source(dest: Path) -> Path:
    """Copy what a build of chemtomo reads (pyproject, README, src) so that no build files land in the repo."""
    dest.mkdir()
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    shutil.copy2(REPO / "README.md", dest / "README.md")
    shutil.copytree(REPO / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


@pytest.mark.slow
def test_resolves_beside_current_hyperspy_exspy_napari(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    latest = _latest_releases(python, downloads)

    source = _copy_source(tmp_path / "source")
    requirements = [f"{source}[all]", *(f"{name}=={version}" for name, version in latest.items())]
    proc = _pip(python, "install", "--dry-run", "--quiet", "--report", "-", *requirements, timeout_s=900)
    assert proc.returncode == 0, f"pip could not resolve {requirements}:\n{proc.stderr[-6000:]}"

    report = json.loads(proc.stdout)
    resolved = {str(canonicalize_name(item["metadata"]["name"])): item["metadata"]["version"]
                for item in report["install"]}
    assert "chemtomo" in resolved
    for name, version in latest.items():
        assert resolved.get(name) == version, (name, resolved.get(name), version)
    pins = ", ".join(f"{n}=={v}" for n, v in sorted(resolved.items()))
    print(f"resolved with Python {sys.version.split()[0]}: {pins}")
