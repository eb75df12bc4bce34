"""Progress of a long loop, logged every few seconds: done/total, items/s, ETA."""
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
