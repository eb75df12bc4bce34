"""Session hooks (training/session_hooks.py)."""
import os

import pytest
import tensorflow as tf


@pytest.mark.skipif(not (hasattr(os, "SCHED_IDLE") and os.path.isdir("/proc/self/task")),
                    reason="idle input priority is Linux's SCHED_IDLE, read through /proc/self/task")
def test_input_threads_go_to_idle_priority_and_the_batches_do_not_change():
    import threading

    from siamese_graph.training import session_hooks

    v1 = tf.compat.v1

    class Snapshot(v1.train.SessionRunHook):  # the threads and their policies as the session starts
        def after_create_session(self, session, coord):
            self.policies = {t: os.sched_getscheduler(t) for t in session_hooks.thread_ids()}

    def run(priority):
        with tf.Graph().as_default():
            ds = tf.data.Dataset.range(400).map(lambda x: tf.cast(x, tf.float32) ** 2, num_parallel_calls=4)
            batch = v1.data.make_one_shot_iterator(ds.batch(8).prefetch(2)).get_next()
            snap = Snapshot()
            with v1.train.MonitoredSession(hooks=[snap] + ([priority] if priority else [])) as sess:
                out = [sess.run(batch) for _ in range(20)]
                policies = {t: os.sched_getscheduler(t) for t in session_hooks.thread_ids()}
        return out, snap.policies, policies

    hook = session_hooks.InputPriorityHook()
    out, before, during = run(hook)
    assert hook.lowered and not hook.lowered & set(before)  # only threads started after the session
    assert all(during[t] == os.SCHED_IDLE for t in hook.lowered if t in during)
    assert any(t in during for t in hook.lowered)
    assert all(during[t] == before[t] for t in before if t in during)  # the session's own pools keep theirs
    assert during[threading.get_native_id()] != os.SCHED_IDLE
    plain, _, _ = run(None)
    assert all((a == b).all() for a, b in zip(out, plain)) and len(out) == len(plain) == 20
