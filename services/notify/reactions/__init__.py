"""What notify does when something happens, in the background of each process.

* :mod:`.delivery` — the delivery worker: works off the outbox the routing projection fills, once
  per notification, with retries and dead letters; and the outbox's status for ``/readyz``.
* :mod:`.timers` — escalations nobody acknowledged in time, and the secretary's daily digest.

Both append a notification's (or a watch's) step events through :mod:`services.notify.steps`,
exactly once whatever crashed in between — as the handlers do.
"""

from __future__ import annotations

from .delivery import DeliveryWorker, delivery_outbox, delivery_worker
from .timers import timers

__all__ = ["DeliveryWorker", "delivery_outbox", "delivery_worker", "timers"]
