"""The NATS adapter: everything gridwork does to and around nats-py in one place.

* ``patches`` — the faster publish framing and lazy header parsing patched into nats-py (checked
  against the installed version at start-up; ``GRIDWORK_NATS_STOCK_CLIENT=1`` runs stock nats-py);
* ``pull_consumer`` — the lean pull consumer of the live projection runner;
* ``replay_reader`` — the ack-less reader replays use;
* ``users`` — NATS users and permissions rendered from ``deploy/nats/permissions.toml``;
* ``broker_metrics`` — FastStream's Prometheus broker metrics for our own consumers.
"""
