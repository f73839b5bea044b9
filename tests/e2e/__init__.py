"""End-to-end tests against a real kube-apiserver (see tests/controlplane/README.md)."""
