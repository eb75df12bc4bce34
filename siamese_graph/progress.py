"""Long jobs: progress logged every few seconds (done/total, items/s, ETA), and how
many worker processes they run."""
import os
import time

from absl import logging


class Progress:
    """progress = Progress(total, "episodes"); progress.update(k) after item k (1-based)."""

    def __init__(self, total, what, every_seconds=5.0):
        self.total, self.what, self.every = total, what, every_seconds
        self.start = self.last = time.time()

    def update(self, done):
        now = time.time()
        if now - self.last < self.every and done < self.total:
            return
        if done >= self.total and now - self.start < self.every:
            return  # a short loop: nothing to report
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        logging.info("%d/%d %s, %.1f %s/s, ETA %.0fs", done, self.total, self.what, rate, self.what,
                     (self.total - done) / rate if rate > 0 else float("inf"))


def worker_count(requested, tasks, what):
    """The worker processes a job runs: requested, but no more than its tasks and this
    machine's CPUs (each process loads TensorFlow: more than the CPUs only queue, and
    a thousand would exhaust memory before a task ran). Logs when it caps."""
    cap = max(1, min(requested, tasks, os.cpu_count() or 1))
    if cap < requested:
        logging.info("%s: %d workers, not %d (%d tasks, %d CPUs)", what, cap, requested, tasks, os.cpu_count() or 1)
    return cap
