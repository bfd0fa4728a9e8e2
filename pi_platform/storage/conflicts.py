"""Optimistic commit races on Delta tables: the losing writer tries again, with backoff, and says so.

Every writer of the platform's tables (sharded collectors, a compaction beside the collector, two runs of one
partition) commits optimistically; delta-rs raises `CommitFailedError` when another writer's commit makes this
one invalid.
"""

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from deltalake.exceptions import CommitFailedError

T = TypeVar("T")
# Concurrent writers (several backfill runs merging into one table) lose the race now and then; the operation
# itself is idempotent, so re-running it is the correct answer.
COMMIT_ATTEMPTS = 5

log = logging.getLogger(__name__)


def retry_conflicts(operation: Callable[[], T], what: str, attempts: int = COMMIT_ATTEMPTS) -> T:
    """Run `operation` again while another writer wins the optimistic commit race (sharded collectors, a
    compaction beside the collector, two runs of one partition); each lost race is logged with what was being
    committed. `operation` must be idempotent or re-check what is already committed itself."""
    for number in range(1, attempts + 1):
        try:
            return operation()
        except CommitFailedError as exc:
            if number == attempts:
                raise
            delay = min(5.0, 0.05 * 2 ** number) * random.uniform(0.5, 1.5)
            log.warning("commit of %s lost a race with another writer (attempt %d: %s); retrying in %.2fs", what,
                        number, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
