"""Monitors probed from several locations: which runner of a location probes which monitor
(``assignment``), a runner's share of its location (``runner_share``) and the controller that
combines the locations' entries into the monitor's verdict (``controller``). No kopf."""
