"""The Helm chart, rendered offline: lint, schemas, pod security, RBAC, monitoring, metadata.

Render-only (``helm lint`` and ``helm template``), so it is fast; the chart on a real API
server, with the controller and a runner (or the all-in-one operator) running under its
ServiceAccounts, is tests/e2e/helm/. ``rendering`` renders the chart and reads the manifests;
each ``test_*`` module checks one concern.
"""
