"""Loading manifests from disk: every problem is one line naming file, document and field."""

from __future__ import annotations

import base64
from pathlib import Path

import trustme

from tcpmonitor.manifests import load_manifests
from tcpmonitor.references import resolve_material

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
    assert problem.message == "Secret n/payload has no key hello"


def test_a_ca_bundle_that_does_not_load_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "refs.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: n}\n"
        "data: {ca.crt: not a certificate}\n---\n"
        "apiVersion: tcpmonitor.dev/v1alpha1\nkind: TcpMonitor\nmetadata: {name: m, namespace: n}\n"
        "spec: {host: h, port: 1, tls: {enabled: true, caConfigMapRef: {name: ca, key: ca.crt}}}\n"
    )
    [problem] = load_manifests([tmp_path]).problems
    assert problem.field == "spec.tls" and "CA bundle does not load" in problem.message
