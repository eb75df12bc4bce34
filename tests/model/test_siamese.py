"""Shared towers, heads, contrastive loss, schedules and metrics."""
import numpy as np
import pytest
import tensorflow as tf

from siamese_graph.model import siamese
from siamese_graph.model.nets import nets_factory

v1 = tf.compat.v1


@pytest.mark.parametrize("net,size", [("convnet", 32), ("densenet121", 32)])
def test_one_set_of_weights_and_identical_features(net, size):
    kw = {"growth_rate": 4} if net == "densenet121" else {}
    fn = nets_factory.get_network_fn(net, size, **kw)
    with tf.Graph().as_default():
        fn(tf.zeros([1, size, size, 3]), True)
        single = len(v1.global_variables())
    with tf.Graph().as_default():
        x = tf.constant(np.random.RandomState(0).normal(size=(4, size, size, 3)), tf.float32)
        fa, fb = siamese.towers(x, x, fn, True)
        assert len(v1.global_variables()) == single
        assert all(v.op.name.startswith("tower/") for v in v1.global_variables())
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            a, b = sess.run([fa, fb])
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("head", siamese.HEADS)
def test_gradients_finite_at_zero_distance(head):
    fn = nets_factory.get_network_fn("convnet", 16)
    with tf.Graph().as_default():
        x = tf.constant(np.random.RandomState(1).normal(size=(2, 16, 16, 3)), tf.float32)
        fa, fb = siamese.towers(x, x, fn, True)
        dw = siamese.distance(fa, fb, head, head_units=8)
        loss = siamese.contrastive_loss(dw, tf.constant([0, 0]), 1.0)
        grads = [g for g in tf.gradients(loss, v1.trainable_variables()) if g is not None]
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            d, gs = sess.run([dw, grads])
        np.testing.assert_allclose(d, np.sqrt(1e-6), rtol=1e-4)  # sqrt(0 + epsilon)
        assert all(np.all(np.isfinite(g)) for g in gs) and len(gs) > 0


def test_moving_average_getter_reads_the_averages_and_restore_maps_them():
    fn = nets_factory.get_network_fn("convnet", 16, convnet_embedding=4)
    x = np.random.RandomState(2).normal(size=(3, 16, 16, 3)).astype(np.float32)
    with tf.Graph().as_default():
        step = v1.train.get_or_create_global_step()
        raw = siamese.tower(tf.constant(x), fn, False)
        ema = siamese.moving_averages(0.9, step)
        update = ema.apply(v1.trainable_variables())
        count = len(v1.global_variables())
        averaged = siamese.tower(tf.constant(x), fn, False, reuse=True,
                                 custom_getter=siamese.moving_average_getter(ema))
        assert len(v1.global_variables()) == count  # the getter makes no variables
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(update)
            rng = np.random.RandomState(3)
            weights = v1.trainable_variables()
            shadow = [rng.normal(size=v.shape).astype(np.float32) * 0.1 for v in weights]
            for v, value in zip(weights, shadow):
                ema.average(v).load(value, sess)
            got_avg, got_raw = sess.run([averaged, raw])
            for v, value in zip(weights, shadow):  # the raw tower with the shadow values
                v.load(value, sess)
            want = sess.run(raw)
        np.testing.assert_allclose(got_avg, want, rtol=1e-5, atol=1e-6)
        assert np.abs(got_raw - want).max() > 1e-3
        mapping = siamese.averaged_variables_to_restore(ema)
        assert mapping["tower/conv1/weights/ExponentialMovingAverage"].op.name == "tower/conv1/weights"
        assert mapping["tower/bn1/moving_mean"].op.name == "tower/bn1/moving_mean"  # not averaged


def test_contrastive_loss_against_hand_values():
    with tf.Graph().as_default():
        dw = tf.constant([0.5, 0.5, 1.5, 0.2])
        labels = tf.constant([0, 1, 1, 0])
        loss = siamese.contrastive_loss(dw, labels, margin=1.0)
        # same: 0.5*0.25=0.125; different at 0.5: 0.5*0.5^2=0.125; beyond margin: 0; same: 0.02
        with v1.Session() as sess:
            assert sess.run(loss) == pytest.approx((0.125 + 0.125 + 0.0 + 0.02) / 4)


@pytest.mark.parametrize("head", siamese.HEADS)
def test_pairwise_distance_and_all_pairs_loss_against_numpy(head):
    rng = np.random.RandomState(4)
    fa, fb = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    ida, idb = np.array([7, 7, 8, 9]), np.array([7, 5, 8, 7])
    with tf.Graph().as_default():
        diag = siamese.distance(tf.constant(fa), tf.constant(fb), head, head_units=5)
        full = siamese.pairwise_distance(tf.constant(fa), tf.constant(fb), head, head_units=5, reuse=True)
        loss = siamese.contrastive_loss_all_pairs(full, tf.constant(ida), tf.constant(idb), 1.0)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            d, m, got = sess.run([diag, full, loss])
            rows = [sess.run(siamese.distance(tf.constant(fa[i:i + 1].repeat(4, 0)), tf.constant(fb), head,
                                              head_units=5, reuse=True)) for i in range(4)]
    np.testing.assert_allclose(np.diag(m), d, rtol=1e-5)
    np.testing.assert_allclose(m, np.stack(rows), rtol=1e-5)
    if head == "euclidean":
        np.testing.assert_allclose(m, np.sqrt(((fa[:, None] - fb[None]) ** 2).sum(-1) + 1e-6), rtol=1e-5)
    same = ida[:, None] == idb[None, :]  # (0,0), (0,3), (1,0), (1,3), (2,2): 5 same, 11 different
    want = 0.5 * ((0.5 * m[same] ** 2).mean() + (0.5 * np.maximum(0, 1 - m[~same]) ** 2).mean())
    assert same.sum() == 5 and got == pytest.approx(want, rel=1e-5)


def test_active_all_pairs_loss_averages_only_the_different_pairs_inside_the_margin():
    dw = np.array([[0.2, 0.5, 1.5], [0.9, 0.4, 2.0], [0.1, 3.0, 0.3]], np.float32)
    ida, idb = np.array([1, 2, 3]), np.array([1, 2, 3])  # the diagonal is same
    with tf.Graph().as_default():
        args = (tf.constant(dw), tf.constant(ida), tf.constant(idb), 1.0)
        both = siamese.contrastive_loss_all_pairs(*args), siamese.contrastive_loss_all_pairs(*args, active=True)
        with v1.Session() as sess:
            plain, active = sess.run(both)
    same = np.eye(3, dtype=bool)
    same_term = (0.5 * dw[same] ** 2).mean()
    hinge = 0.5 * np.maximum(0, 1 - dw[~same]) ** 2  # 6 different pairs, 3 inside the margin (0.5, 0.9, 0.1)
    assert plain == pytest.approx(0.5 * (same_term + hinge.sum() / 6), rel=1e-5)
    assert active == pytest.approx(0.5 * (same_term + hinge.sum() / 3), rel=1e-5)
    with tf.Graph().as_default():  # no different pair inside the margin: the term is 0, not NaN
        far = siamese.contrastive_loss_all_pairs(tf.constant(dw + 5 * (1 - np.eye(3, dtype=np.float32))),
                                                 tf.constant(ida), tf.constant(idb), 1.0, active=True)
        with v1.Session() as sess:
            assert sess.run(far) == pytest.approx(0.5 * same_term, rel=1e-5)


def test_euclidean_and_absdiff_distances():
    with tf.Graph().as_default():
        a = tf.constant([[0.0, 3.0], [1.0, 1.0]])
        b = tf.constant([[4.0, 0.0], [1.0, 1.0]])
        d = siamese.distance(a, b, "euclidean", epsilon=1e-6)
        h = siamese.distance(a, b, "absdiff", head_units=3)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            dv, hv = sess.run([d, h])
            w, bias = sess.run(v1.trainable_variables())
        np.testing.assert_allclose(dv, [5.0, np.sqrt(1e-6)], rtol=1e-5)
        out = np.abs(np.array([[4.0, 3.0], [0.0, 0.0]])) @ w + bias
        np.testing.assert_allclose(hv, np.sqrt((out ** 2).sum(1) + 1e-6), rtol=1e-5)




def test_cosine_margin_loss_is_cosface_over_the_rows_with_a_class():
    rng = np.random.RandomState(0)
    f = rng.normal(size=(6, 4)).astype(np.float32)
    w = rng.normal(size=(4, 5)).astype(np.float32)
    classes = np.array([0, 3, -1, 4, 3, 1])
    scale, margin = 8.0, 0.3
    with tf.Graph().as_default():
        loss = siamese.cosine_margin_loss(tf.constant(f), tf.constant(classes), 5, scale, margin)
        weights, = [v for v in v1.global_variables() if v.op.name.startswith(siamese.CLASSIFIER_SCOPE)]
        assert weights.shape == (4, 5)
        with v1.Session() as sess:
            sess.run(weights.assign(w))
            got = sess.run(loss)
    cos = (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    want = []
    for row, c in enumerate(classes):
        if c < 0:
            continue  # no class: left out of the mean
        logits = scale * (cos[row] - margin * (np.arange(5) == c))
        want.append(np.log(np.exp(logits).sum()) - logits[c])
    np.testing.assert_allclose(got, np.mean(want), rtol=1e-5)


def test_cosine_margin_loss_pulls_features_to_their_class():
    rng = np.random.RandomState(1)
    with tf.Graph().as_default():
        f = tf.Variable(rng.normal(size=(8, 6)).astype(np.float32))
        classes = tf.constant([0, 1, 2, 3, 0, 1, 2, 3])
        loss = siamese.cosine_margin_loss(f, classes, 4, 16.0, 0.2)
        weights, = [v for v in v1.global_variables() if v.op.name.startswith(siamese.CLASSIFIER_SCOPE)]
        step = v1.train.AdamOptimizer(0.05).minimize(loss)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            first = sess.run(loss)
            for _ in range(300):
                sess.run(step)
            last, feats, w = sess.run([loss, f, weights])
    assert last < first / 4
    cos = (feats / np.linalg.norm(feats, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    for row in range(8):  # each photo nearer its own person's direction than any other, by the margin
        own = cos[row, row % 4]
        assert own - 0.2 > np.delete(cos[row], row % 4).max()
