"""The ``tcpmonitor`` command line: probe, validate, crd (and the long-running modes)."""

from .main import main

__all__ = ["main"]
