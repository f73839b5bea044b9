"""The Helm chart on the real control plane, and each process with exactly the chart's RBAC.

The harness has no kubelet, so the chart's pods never run. Instead the processes run locally
with the identity their pods would have: a token for the chart's ServiceAccount from the
TokenRequest API, and the command-line arguments of the chart's Deployment. The default install
(a controller, and runners in location ``default``) must reconcile monitors end to end with
those identities: the runner writes ``status.locations[default]``, the controller the top-level
state, conditions and Events (the RBAC is sufficient). With any one verb of a process's rules
removed, that process must fail in a way a user sees, in its log and on the objects (the RBAC
is not wider than needed). The same holds for the all-in-one mode, and for a remote location's
identity.

``chart_release`` installs the chart and runs its processes under its identities; the
releases are shared by the package's modules (conftest.py), each of which checks one mode or
concern.
"""
