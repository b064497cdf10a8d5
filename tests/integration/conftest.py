"""Integration tier: each test on the session's real nats-server and PostgreSQL (tests/harness.py)."""

from tests.harness import settings, stack

__all__ = ["settings", "stack"]
