"""Build etcd, kube-apiserver and kubectl from the pinned Go module, once per version.

The binaries come from source (``go/``) rather than release downloads because the
only network the project can rely on is the Go module proxy. A build takes minutes,
so the result is cached outside the source tree and keyed by the Kubernetes version;
a digest of the Go sources guards against a cache built from different inputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GO_MODULE_DIR = Path(__file__).resolve().parent / "go"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "TCPMONITOR_CONTROLPLANE_CACHE"
DEFAULT_CACHE_ROOT = REPO_ROOT / ".cache" / "controlplane"

#: Locations tried after PATH: the official tarball's install prefix is often not on PATH.
GO_FALLBACK_LOCATIONS = (Path("/usr/local/go/bin/go"), Path.home() / "go" / "bin" / "go")

_BINARY_NAMES = ("etcd", "kube-apiserver", "kubectl")
_DIGEST_FILE = ".source-digest"


class BuildError(RuntimeError):
    """The Go toolchain ran but did not produce the binaries."""


class GoNotFoundError(BuildError):
    """No Go toolchain is available, so the binaries cannot be built here."""


@dataclass(frozen=True)
class Binaries:
    """Paths of one complete, verified set of control-plane binaries."""

    etcd: Path
    kube_apiserver: Path
    kubectl: Path

    @classmethod
    def in_directory(cls, directory: Path) -> Binaries:
        return cls(
            etcd=directory / "etcd",
            kube_apiserver=directory / "kube-apiserver",
            kubectl=directory / "kubectl",
        )


def _required_version(module: str) -> str:
    """Read a module's version from go.mod, the single source of truth for versions."""
    text = (GO_MODULE_DIR / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise BuildError(f"{module} is not required in {GO_MODULE_DIR / 'go.mod'}")
    return match.group(1)


def kubernetes_version() -> str:
    """The pinned Kubernetes release, e.g. ``v1.36.3``."""
    return _required_version("k8s.io/kubernetes")


def etcd_version() -> str:
    """The pinned etcd release, e.g. ``v3.6.8``."""
    return _required_version("go.etcd.io/etcd/server/v3")


def cache_root() -> Path:
    """Directory holding one subdirectory per Kubernetes version."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else DEFAULT_CACHE_ROOT


def bin_dir() -> Path:
    return cache_root() / kubernetes_version() / "bin"


def _ldflags() -> str:
    """Stamp the release version the way Kubernetes' own build does.

    Without this, ``kubectl version`` reports ``v0.0.0-master`` and tests cannot tell
    which release they are talking to.
    """
    version = kubernetes_version()
    major, minor = version.removeprefix("v").split(".")[:2]
    stamps = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in stamps.items()]
    return " ".join(flags)


def source_digest() -> str:
    """Hash of everything that determines the binaries, to detect a stale cache."""
    digest = hashlib.sha256(_ldflags().encode())
    files = [GO_MODULE_DIR / "go.mod", GO_MODULE_DIR / "go.sum"]
    files += sorted(GO_MODULE_DIR.rglob("*.go"))
    for path in files:
        digest.update(str(path.relative_to(GO_MODULE_DIR)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def find_binaries() -> Binaries | None:
    """Return the cached binaries if they are complete and built from the current sources."""
    directory = bin_dir()
    binaries = Binaries.in_directory(directory)
    try:
        recorded = (directory / _DIGEST_FILE).read_text().strip()
    except OSError:
        return None
    if recorded != source_digest():
        return None
    if not all(os.access(directory / name, os.X_OK) for name in _BINARY_NAMES):
        return None
    return binaries


def find_go() -> Path | None:
    found = shutil.which("go")
    if found:
        return Path(found)
    return next((path for path in GO_FALLBACK_LOCATIONS if os.access(path, os.X_OK)), None)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise builds so parallel test sessions don't compile the same thing twice."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_binaries(*, log: bool = True) -> Binaries:
    """Return cached binaries, building them first if the cache is cold or stale.

    Raises GoNotFoundError when a build is needed but there is no Go toolchain.
    """
    cached = find_binaries()
    if cached is not None:
        return cached
    go = find_go()
    if go is None:
        raise GoNotFoundError(
            f"the control-plane binaries are not in {bin_dir()} and no Go toolchain was found "
            f"(looked on PATH and at {', '.join(map(str, GO_FALLBACK_LOCATIONS))})"
        )
    target = bin_dir()
    with _exclusive(target.parent / ".build.lock"):
        cached = find_binaries()  # another process may have finished while we waited
        if cached is not None:
            return cached
        _build(go, target, log=log)
    built = find_binaries()
    if built is None:
        raise BuildError(f"build finished but {target} is still incomplete")
    return built


def _build(go: Path, target: Path, *, log: bool) -> None:
    """Build into a scratch directory and rename it into place, so a killed build
    never leaves a half-populated cache that looks usable."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bin.partial-", dir=target.parent))
    scratch.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        # go.mod/go.sum are committed; a build must never rewrite them.
        "GOFLAGS": "-mod=readonly",
    }
    command = [
        str(go),
        "build",
        "-trimpath",
        f"-ldflags={_ldflags()}",
        "-o",
        str(scratch) + os.sep,
        "./cmd/etcd",
        "./cmd/kube-apiserver",
        "./cmd/kubectl",
    ]
    if log:
        print(
            f"building control-plane binaries {kubernetes_version()} / etcd {etcd_version()} "
            f"into {target} (takes a few minutes on a cold Go build cache)",
            flush=True,
        )
    try:
        result = subprocess.run(
            command, cwd=GO_MODULE_DIR, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise BuildError(
                f"`{' '.join(command)}` failed in {GO_MODULE_DIR} "
                f"(exit {result.returncode}):\n{result.stderr[-4000:]}"
            )
        (scratch / _DIGEST_FILE).write_text(source_digest() + "\n")
        if target.exists():
            shutil.rmtree(target)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
