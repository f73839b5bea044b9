"""Real daemons from Debian packages, started by the tests on loopback (issue 12).

``.ci/provision-daemons`` installs the packages; each module here writes a config for one
daemon into a temp dir, starts it directly (there is no systemd) as a tracked child process
on free 127.0.0.1 ports, waits until it accepts connections and stops it again. ``pki`` gives
every daemon its own server certificate from one test CA, so a test can tell which daemon's
certificate it was shown.
"""
