"""Monitors from files on disk, no cluster: bounded YAML reading (``bounded_yaml``), manifests
with their Secrets and ConfigMaps (``manifests``) and ``tcpmonitor run -f`` (``run``)."""
