"""The helm CLI the chart tests will drive is present and runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def test_helm_version_runs(helm: Path, tmp_path: Path) -> None:
    # Point helm's state at tmp_path so the test never reads or writes ~/.config/helm.
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [str(helm), "version", "--short"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("v3."), result.stdout
