"""End-to-end tier: whole stacks (the demo, the simulator, clusters, operations) on real servers
and service processes; the session's servers come from tests/harness.py."""

from tests.harness import settings, stack

__all__ = ["settings", "stack"]
