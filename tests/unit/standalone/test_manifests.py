"""Loading manifests from disk: every problem is one line naming file, document and field."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import trustme

from tcpmonitor.probe.material import resolve_material
from tcpmonitor.standalone.bounded_yaml import Limits
from tcpmonitor.standalone.manifests import load_manifests

from .test_bounded_yaml import billion_laughs

MONITOR = """\
apiVersion: tcpmonitor.dev/v1alpha1
kind: TcpMonitor
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{host: example.com, port: {port}}}
"""


def test_documents_are_numbered_per_file_and_other_kinds_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n---\n"
        + MONITOR.format(name="ok", namespace="default", port=80)
        + "---\n"
        + MONITOR.format(name="bad", namespace="default", port=0)
    )
    result = load_manifests([tmp_path])
    assert [m.monitor.metadata.name for m in result.monitors] == ["ok"]
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'a.yaml'}:doc 3: spec.port: Input should be greater than or equal to 1 "
        "(got 0)"
    ]


def test_yaml_syntax_error_names_the_document_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(MONITOR.format(name="a", namespace="x", port=1) + "---\nspec: [unclosed\n")
    result = load_manifests([path])
    assert len(result.monitors) == 1
    [problem] = result.problems
    assert str(problem).startswith(f"{path}:doc 2: YAML error at line")


def test_missing_path_and_non_mapping_documents(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    result = load_manifests([tmp_path / "absent.yaml", tmp_path / "list.yaml"])
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'absent.yaml'}: no such file or directory",
        f"{tmp_path / 'list.yaml'}:doc 1: not a YAML mapping",
    ]


def test_duplicate_monitor_is_reported_with_the_first_location(tmp_path: Path) -> None:
    text = MONITOR.format(name="a", namespace="n", port=1)
    (tmp_path / "one.yaml").write_text(text)
    (tmp_path / "two.yaml").write_text(text)
    result = load_manifests([tmp_path])
    assert len(result.monitors) == 1
    assert "duplicate of" in str(result.problems[0]) and "one.yaml:doc 1" in str(result.problems[0])


def test_wrong_api_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MONITOR.format(name="a", namespace="n", port=1).replace("v1alpha1", "v1"))
    assert "apiVersion" in str(load_manifests([path]).problems[0])


def test_kubectl_list_output_is_understood(tmp_path: Path) -> None:
    items = MONITOR.format(name="a", namespace="n", port=1).replace("\n", "\n    ")
    (tmp_path / "list.yaml").write_text(f"apiVersion: v1\nkind: List\nitems:\n  - {items}")
    assert [m.monitor.key for m in load_manifests([tmp_path]).monitors] == [("n", "a")]


def test_secrets_and_config_maps_beside_monitors_resolve_references(tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = ca.cert_pem.bytes().decode()
    client = ca.issue_cert("probe")
    secret = {
        "tls.crt": base64.b64encode(client.cert_chain_pems[0].bytes()).decode(),
        "tls.key": base64.b64encode(client.private_key_pem.bytes()).decode(),
    }
    (tmp_path / "refs.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: payload, namespace: n}\n"
        "stringData: {hello: 'HELO probe'}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: n}\n"
        "data:\n  ca.crt: |\n" + "".join(f"    {line}\n" for line in pem.splitlines()) + "---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: client, namespace: n}\n"
        f"data: {{tls.crt: {secret['tls.crt']}, tls.key: {secret['tls.key']}}}\n---\n"
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\nmetadata: {name: m, namespace: n}\n"
        "spec:\n  host: example.com\n  port: 443\n"
        "  sendFrom: {secretKeyRef: {name: payload, key: hello}}\n"
        "  tls: {enabled: true, caConfigMapRef: {name: ca, key: ca.crt},"
        " clientCertSecretRef: {name: client}}\n"
    )
    result = load_manifests([tmp_path])
    assert result.problems == []
    monitor = result.monitors[0].monitor
    material = resolve_material(monitor.spec, "n", result)
    assert material.payload == b"HELO probe"
    assert material.ca_pem is not None and material.ca_pem.strip() == pem.strip()
    assert material.client_certificate is not None


def test_a_present_secret_without_the_key_is_a_problem_even_offline(tmp_path: Path) -> None:
    (tmp_path / "refs.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: payload, namespace: n}\n"
        "stringData: {other: x}\n---\n"
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\nmetadata: {name: m, namespace: n}\n"
        "spec: {host: h, port: 1, sendFrom: {secretKeyRef: {name: payload, key: hello}}}\n"
    )
    [problem] = load_manifests([tmp_path]).problems
    assert problem.field == "spec.sendFrom.secretKeyRef"
    # The same words as for a Secret that is not there: see test_secret_references.
    assert problem.message == 'Secret "payload" key "hello": not found or not readable'


def test_a_ca_bundle_that_does_not_load_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "refs.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: n}\n"
        "data: {ca.crt: not a certificate}\n---\n"
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\nmetadata: {name: m, namespace: n}\n"
        "spec: {host: h, port: 1, tls: {enabled: true, caConfigMapRef: {name: ca, key: ca.crt}}}\n"
    )
    [problem] = load_manifests([tmp_path]).problems
    assert problem.field == "spec.tls" and "CA bundle does not load" in problem.message


GOOD = MONITOR.format(name="good", namespace="n", port=80)
BLOCK = (
    "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\nmetadata: {name: m, namespace: n}\n"
    "spec:\n  host: example.com\n  port: 80\n"
)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("kind: Secret\nmetadata: just-a-string\n", "metadata", "must be a mapping"),
        ("kind: Secret\nmetadata: {name: s}\ndata: [a, b]\n", "data", "must be a mapping"),
        ("kind: Secret\nmetadata: {name: s}\nstringData: x\n", "stringData", "must be a mapping"),
        ("kind: Secret\nmetadata: {name: s}\ndata: {k: 12}\n", "data.k", "must be a string"),
        ("kind: Secret\nmetadata: {name: [s]}\n", "metadata", "name and namespace must be strings"),
        ("kind: ConfigMap\nmetadata: {name: c}\ndata: text\n", "data", "must be a mapping"),
        (
            "kind: ConfigMap\nmetadata: {name: c}\ndata: {1: x}\n",
            "data",
            "keys must be strings (got 1)",
        ),
        ("kind: ConfigMap\nmetadata: {name: c}\ndata: {k: [x]}\n", "data.k", "must be a string"),
        ("kind: List\nitems: 3\n", "items", "must be a list"),
        ("kind: List\nitems: {a: 1}\n", "items", "must be a list"),
        ("kind: List\nitems: [{kind: List, items: []}]\n", "items[0]", "a List inside a List"),
        ("kind: List\nitems: [x]\n", "items[0]", "not a YAML mapping"),
        (
            "kind: List\nitems: [{apiVersion: v1, kind: Secret, metadata: 1}]\n",
            "items[0].metadata",
            "must be a mapping",
        ),
    ],
)
def test_malformed_secrets_config_maps_and_lists_are_one_line_problems(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(GOOD + "---\napiVersion: v1\n" + text)
    result = load_manifests([path])
    assert [str(p) for p in result.problems] == [f"{path}:doc 2: {field}: {message}"]
    assert [m.monitor.metadata.name for m in result.monitors] == ["good"]


def test_hostile_files_are_one_line_problems_and_the_other_files_still_load(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-good.yaml").write_text(GOOD)
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "bomb.yaml").write_text(billion_laughs())
    (tmp_path / "deep.yaml").write_text("- " * 20_000 + "x\n")
    (tmp_path / "loop.yaml").write_text("apiVersion: v1\nkind: List\nitems: &i [*i]\n")
    with (tmp_path / "sparse.yaml").open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    result = load_manifests([tmp_path])
    assert [m.monitor.metadata.name for m in result.monitors] == ["good"]
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'bomb.yaml'}:doc 1: YAML error at line 6: more than 200000 YAML nodes "
        "in one document once aliases are expanded: split it into several documents",
        f"{tmp_path / 'deep.yaml'}:doc 1: YAML error at line 1: nested deeper than 64 levels",
        f"{tmp_path / 'fifo.yaml'}: not a regular file (a FIFO)",
        f"{tmp_path / 'loop.yaml'}:doc 1: YAML error at line 3: alias *i refers to a node that "
        "contains it",
        f"{tmp_path / 'sparse.yaml'}: larger than 32 MiB, the limit for one file",
    ]


def test_dev_zero_is_refused() -> None:
    assert [str(p) for p in load_manifests([Path("/dev/zero")]).problems] == [
        "/dev/zero: not a regular file (a character device)"
    ]


def test_links_to_directories_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.yaml").write_text(GOOD)
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    (tmp_path / "self").symlink_to(".")
    (tmp_path / "root").symlink_to("/")
    result = load_manifests([tmp_path])
    assert result.problems == []
    assert [m.file for m in result.monitors] == [str(tmp_path / "sub" / "m.yaml")]


def test_a_mounted_config_map_is_read_once(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as m.yaml -> ..data/m.yaml, ..data -> ..2026_12_01..."""
    real = tmp_path / "..2026_12_01_00_00_00.1"
    real.mkdir()
    (real / "m.yaml").write_text(GOOD)
    (tmp_path / "..data").symlink_to(real.name)
    (tmp_path / "m.yaml").symlink_to("..data/m.yaml")
    result = load_manifests([tmp_path])
    assert result.problems == []
    assert len(result.monitors) == 1


def test_limits_are_passed_through(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(GOOD)
    [problem] = load_manifests([path], limits=Limits(max_nodes=10)).problems
    assert str(problem).endswith("more than 10 YAML nodes once aliases are expanded")


def test_a_monitor_larger_than_any_valid_one_is_one_problem_not_one_per_value(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(BLOCK + "  assertions: [" + ", ".join(["1"] * 20_000) + "]\n")
    assert [str(p) for p in load_manifests([path]).problems] == [
        f"{path}:doc 1: more than 10000 values: larger than any valid TcpMonitor"
    ]


def test_many_problems_in_one_document_end_with_a_count(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    keys = "".join(f"  {i}: x\n" for i in range(100))
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n" + keys)
    problems = [str(p) for p in load_manifests([path]).problems]
    assert len(problems) == 21
    assert problems[-1] == f"{path}:doc 1: 80 more problem(s) in this document"
    spec = "".join(f"  unknown{i}: 1\n" for i in range(50))
    path.write_text(BLOCK + spec)
    problems = [str(p) for p in load_manifests([path]).problems]
    assert problems[0] == f"{path}:doc 1: spec.unknown0: unknown field (got 1)"
    assert problems[-1] == f"{path}:doc 1: 30 more problem(s) in this document"
