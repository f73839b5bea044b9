"""Property tests: no input, however odd, makes the validator or the argument parsing crash."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpmonitor.cli import main
from tcpmonitor.cli.arguments import parse_target, unescape
from tcpmonitor.standalone.manifests import load_manifests

SPEC_KEYS = [
    "host",
    "port",
    "interval",
    "timeout",
    "ipFamily",
    "send",
    "sendBase64",
    "sendFrom",
    "assertions",
    "degradedResponseTime",
    "maxResponseTime",
    "tls",
    "retries",
    "failureThreshold",
    "successThreshold",
    "paused",
    "bogus",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(["10s", "1d", "1m30s", "0ms", "::1", "Matches", "ResponseTime", "(", "YQ=="]),
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [*SPEC_KEYS, "source", "comparison", "target", "enabled", "secretKeyRef", "name"]
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=12,
)
specs = st.dictionaries(st.sampled_from(SPEC_KEYS), values, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs,
    metadata=st.one_of(st.none(), st.dictionaries(st.sampled_from(["name", "namespace"]), scalars)),
)
def test_validator_never_crashes_on_any_spec(spec: dict[str, Any], metadata: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        doc = {
            "apiVersion": "tcpmonitor.dev/v1alpha1",
            "kind": "TcpMonitor",
            "metadata": metadata,
            "spec": spec,
        }
        path.write_text(yaml.safe_dump(doc))
        result = load_manifests([path])
        assert len(result.problems) + len(result.monitors) >= 1
        for problem in result.problems:
            assert "\n" not in str(problem)
            assert str(problem).startswith(f"{path}:doc 1: ")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_validator_never_crashes_on_arbitrary_file_content(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_text(text)
        load_manifests([path])


@given(st.text(max_size=60))
def test_target_parsing_returns_or_refuses(text: str) -> None:
    try:
        host, port = parse_target(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert host and 1 <= port <= 65535


@given(st.text(max_size=60))
def test_unescape_returns_bytes_or_refuses(text: str) -> None:
    try:
        assert isinstance(unescape(text), bytes)
    except ValueError as exc:
        assert "unknown escape" in str(exc)


@settings(max_examples=100, deadline=None)
@given(
    argv=st.lists(
        st.sampled_from(
            [
                "probe",
                "validate",
                "crd",
                "-o",
                "yaml",
                "json",
                "--timeout",
                "x",
                "--send",
                "\\",
                "h:0",
                "--ip-family",
                "ipv7",
                "-f",
                "/nonexistent",
                "--tls",
                "--sni",
                "a_b",
            ]
        ),
        max_size=5,
    )
)
def test_cli_argument_errors_exit_with_status_not_exception(argv: list[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exited:
        code = exited.code  # type: ignore[assignment]
    assert code in (0, 1, 2)
