"""Benchmark: training steps/s of the session graph against Keras 3, and input overhead.

Rows (same convnet tower with its linear embedding, Euclidean head on L2-normalized
features, contrastive loss, Adam, same batch size):
  session graph, cached batch   tf.compat.v1 Session, one batch held in variables
  keras tf.function, cached     the same network as Keras 3 layers, a tf.function step
  session graph, pair pipeline  the session graph fed by pairs.inputs (augmented)
Each runs in its own subprocess, in alternation (A B C A B C), to even out a
shared machine's noise; the table shows the median of the repeats.

  python bench/train.py [--records_dir=tfrecords/celeba-mini] [--batch_size=N] [--image_size=N] [--steps=40]

batch_size, image_size and convnet_embedding default to train.flags' values.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def session_rate(records_dir, batch, image_size, embedding, steps, pipeline):
    import numpy as np
    import tensorflow as tf

    from siamese_graph import pairs, siamese
    from siamese_graph.nets import nets_factory

    v1 = tf.compat.v1
    with tf.Graph().as_default():
        if pipeline:
            a, b, y = pairs.inputs(records_dir, "train", batch, image_size, augment=True)
        else:
            rng = np.random.RandomState(0)
            a = tf.Variable(rng.normal(size=(batch, image_size, image_size, 3)).astype("float32"), trainable=False)
            b = tf.Variable(rng.normal(size=(batch, image_size, image_size, 3)).astype("float32"), trainable=False)
            y = tf.constant([0, 1] * (batch // 2))
        fn = nets_factory.get_network_fn("convnet", image_size, convnet_embedding=embedding)
        fa, fb = siamese.towers(a, b, fn, True)
        loss = siamese.contrastive_loss(siamese.distance(fa, fb, "euclidean"), y, 1.0)
        step = v1.train.get_or_create_global_step()
        with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            op = v1.train.AdamOptimizer(1e-3, beta1=0.9, beta2=0.99).minimize(loss, global_step=step)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(5):
                sess.run(op)
            start = time.time()
            for _ in range(steps):
                sess.run(op)
            return steps / (time.time() - start)


def keras_rate(batch, image_size, embedding, steps):
    import numpy as np
    import keras
    import tensorflow as tf

    from siamese_graph.nets import convnet

    layers = [keras.layers.Input((image_size, image_size, 3))]
    x = layers[0]
    for f in convnet.FILTERS:
        x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3)(x))
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.Conv2D(convnet.LAST_FILTERS, 3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3)(x))
    x = keras.layers.Flatten()(x)
    if embedding:
        x = keras.layers.Dense(embedding)(x)
    tower = keras.Model(layers[0], x)
    opt = keras.optimizers.Adam(1e-3, beta_1=0.9, beta_2=0.99)
    rng = np.random.RandomState(0)
    a = tf.constant(rng.normal(size=(batch, image_size, image_size, 3)).astype("float32"))
    b = tf.constant(rng.normal(size=(batch, image_size, image_size, 3)).astype("float32"))
    y = tf.constant([0.0, 1.0] * (batch // 2))

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            fa = tf.math.l2_normalize(tower(a, training=True), axis=1, epsilon=1e-10)
            fb = tf.math.l2_normalize(tower(b, training=True), axis=1, epsilon=1e-10)
            dw = tf.sqrt(tf.reduce_sum(tf.square(fa - fb), axis=1) + 1e-6)
            loss = tf.reduce_mean((1 - y) * 0.5 * dw ** 2 + y * 0.5 * tf.maximum(0.0, 1.0 - dw) ** 2)
        grads = tape.gradient(loss, tower.trainable_variables)
        opt.apply_gradients(zip(grads, tower.trainable_variables))
        return loss

    for _ in range(5):
        train_step()
    start = time.time()
    for _ in range(steps):
        train_step().numpy()
    return steps / (time.time() - start)


def default_run_flags():
    """batch_size, image_size and convnet_embedding of the default run (train.flags),
    so the bench times the network that the default run trains."""
    out = {"batch_size": 64, "image_size": 64, "convnet_embedding": 0}
    with open(os.path.join(REPO, "train.flags")) as f:
        for line in f:
            name, _, value = line.strip().lstrip("-").partition("=")
            if name in out:
                out[name] = int(value)
    return out


def main():
    defaults = default_run_flags()
    ap = argparse.ArgumentParser()
    ap.add_argument("--records_dir", default=os.path.join(REPO, "tfrecords", "celeba-mini"))
    ap.add_argument("--batch_size", type=int, default=defaults["batch_size"])
    ap.add_argument("--image_size", type=int, default=defaults["image_size"])
    ap.add_argument("--convnet_embedding", type=int, default=defaults["convnet_embedding"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        if args.one == "keras":
            rate = keras_rate(args.batch_size, args.image_size, args.convnet_embedding, args.steps)
        else:
            rate = session_rate(args.records_dir, args.batch_size, args.image_size,
                                args.convnet_embedding, args.steps,
                                args.one == "pipeline")
        print(json.dumps({"rate": rate}))
        return
    kinds = [("cached", "session graph, cached batch"), ("keras", "keras tf.function, cached batch"),
             ("pipeline", "session graph, pair pipeline")]
    rates = {k: [] for k, _ in kinds}
    for _ in range(args.repeats):
        for kind, _ in kinds:
            r = subprocess.run([sys.executable, __file__, "--one", kind, "--records_dir", args.records_dir,
                                "--batch_size", str(args.batch_size), "--image_size", str(args.image_size),
                                "--steps", str(args.steps),
                                "--convnet_embedding", str(args.convnet_embedding)], capture_output=True, text=True)
            if r.returncode:
                sys.exit(r.stderr[-3000:])
            rates[kind].append(json.loads(r.stdout.strip().splitlines()[-1])["rate"])
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("convnet, %dx%d, %d pairs a step, %d timed steps x %d repeats" % (
        args.image_size, args.image_size, args.batch_size, args.steps, args.repeats))
    print("%-32s %9s %9s  %s" % ("run", "steps/s", "pairs/s", "all repeats"))
    for kind, label in kinds:
        print("%-32s %9.2f %9.0f  %s" % (label, med[kind], med[kind] * args.batch_size,
                                        " ".join("%.2f" % r for r in rates[kind])))
    print("session / keras: %.2fx (keras costs %.0f ms more a step)   input overhead "
          "(1 - pipeline / cached): %.1f%%" % (
              med["cached"] / med["keras"], 1000 * (1 / med["keras"] - 1 / med["cached"]),
              100 * (1 - med["pipeline"] / med["cached"])))


if __name__ == "__main__":
    main()
