"""progress: long loops log done/total, items/s and ETA."""
from absl import logging

from siamese_graph.progress import Progress


def test_progress_logs_rate_and_eta(monkeypatch):
    lines = []
    monkeypatch.setattr(logging, "info", lambda fmt, *a: lines.append(fmt % a))
    p = Progress(1000, "episodes", every_seconds=0.0)
    p.start -= 10  # ten seconds in
    p.update(250)
    assert lines and lines[-1].startswith("250/1000 episodes") and "ETA 30s" in lines[-1]
    quiet = Progress(10, "photos", every_seconds=60)
    quiet.update(3)
    assert len(lines) == 1  # not every item: every few seconds


def test_worker_count_is_capped_by_tasks_and_cpus(monkeypatch):
    from siamese_graph import progress

    monkeypatch.setattr(progress.os, "cpu_count", lambda: 2)
    assert progress.worker_count(1000, 50, "x") == 2
    assert progress.worker_count(1000, 1, "x") == 1
    assert progress.worker_count(2, 50, "x") == 2
    assert progress.worker_count(1, 0, "x") == 1  # at least one
