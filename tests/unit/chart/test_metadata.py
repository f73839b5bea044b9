"""Chart.yaml and its Artifact Hub annotations, the chart's CRDs, the install guide's monitors."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from .rendering import CHART, REPO_ROOT, assert_valid_tcpmonitors


def test_chart_crds_are_the_top_level_crds() -> None:
    top = {p.name: p.read_bytes() for p in (REPO_ROOT / "crds").iterdir()}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    assert top
    assert chart == top, "copy crds/ into charts/tcpmonitor-operator/crds/"


def test_chart_versions_match_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert chart["annotations"]["artifacthub.io/license"] == project["license"]  # SPDX


def test_artifact_hub_annotations(tmp_path: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    annotations = chart["annotations"]
    assert annotations["artifacthub.io/operator"] == "true"
    crd = yaml.safe_load((REPO_ROOT / "crds" / "tcpmonitors.tcpmonitor.dev.yaml").read_text())
    (described,) = yaml.safe_load(annotations["artifacthub.io/crds"])
    (version,) = crd["spec"]["versions"]
    assert described["kind"] == crd["spec"]["names"]["kind"]
    assert described["name"] == crd["metadata"]["name"]
    assert described["version"] == version["name"]
    examples = yaml.safe_load(annotations["artifacthub.io/crdsExamples"])
    assert examples
    assert_valid_tcpmonitors(tmp_path, examples)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (image,) = yaml.safe_load(annotations["artifacthub.io/images"])
    assert image["image"] == f"{values['image']['repository']}:{chart['appVersion']}"
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert all(link["url"].startswith("https://") for link in links)
    for link in links:
        docs = re.search(r"/blob/main/(docs/.+)$", link["url"])
        if docs:
            assert (REPO_ROOT / docs.group(1)).is_file(), link["url"]


def test_install_guide_monitors_are_valid(tmp_path: Path) -> None:
    text = (REPO_ROOT / "docs" / "install.md").read_text()
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    monitors = [
        d
        for block in blocks
        for d in yaml.safe_load_all(block)
        if isinstance(d, dict) and d.get("kind") == "TcpMonitor"
    ]
    assert monitors
    assert_valid_tcpmonitors(tmp_path, monitors)
