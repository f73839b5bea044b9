"""Kubernetes glue: kopf handlers, status writes, Events, Secret lookups. Thin by design."""
