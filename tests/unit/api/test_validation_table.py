"""The shared table of manifests (tests/cases) through the offline validator."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tcpmonitor.standalone.manifests import load_manifests

from ...cases.manifests import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_validator_agrees_with_the_table(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(case.manifest()))
    result = load_manifests([path])
    if case.valid:
        assert result.problems == []
        assert len(result.monitors) == 1
        return
    assert result.monitors == []
    assert [p.field for p in result.problems] == [case.field]
    line = str(result.problems[0])
    assert line.startswith(f"{path}:doc 1: {case.field}: ")
    assert case.message in line


def test_shape_only_validation_skips_the_deep_checks(tmp_path: Path) -> None:
    deep = [c for c in CASES if c.deep]
    path = tmp_path / "deep.yaml"
    path.write_text(yaml.safe_dump_all([c.manifest() for c in deep]))
    assert load_manifests([path], deep=False).problems == []
    assert len(load_manifests([path]).problems) == len(deep)
