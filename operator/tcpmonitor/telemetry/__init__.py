"""What the process exports about itself: Prometheus metrics and the HTTP endpoints that
serve them with ``/healthz`` and ``/readyz``. No Kubernetes, no probing."""
