"""Delivering notifications: the outbox worker, the daily digest, e-mail and portal channels.

What is told to whom is decided in :mod:`carnet.domain.notifications`; see
docs/notifications.md.
"""

from carnet.notify.digest import run_digest
from carnet.notify.worker import Backoff, PassResult, Worker

__all__ = ["Backoff", "PassResult", "Worker", "run_digest"]
