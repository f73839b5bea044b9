"""Test suites; a package so the e2e tests can import the ``tests.controlplane`` harness."""
