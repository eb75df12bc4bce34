"""Benchmark: the input graph's cost to training, and the session graph against Keras 3.

Rows:
  default run, cached batch        the default run's training graph (train.flags' TrainConfig:
                                   net, head, loss, moving averages...) on one batch held in
                                   variables: no input at all
  default run, pairs from records  the same graph fed by the pair graph decoding from the
                                   records (--nocache)
  default run, pairs from cache    ... fed by the pair graph decoding once (--cache, the default)
                                   Input-fed rows run the input threads at idle CPU priority, as
                                   train does by default (--input_priority=idle)
  ... input at normal priority     the cache row with --input_priority=normal
  plain net: session, cached       the convnet tower with its embedding, Euclidean head,
                                   contrastive loss, Adam, as a session graph
  plain net: keras tf.function     the same network as Keras 3 layers, a tf.function step
  variant, cached batch            with --variant=FLAG=VALUE[,FLAG=VALUE]: the default run's
                                   graph with those train flags changed (e.g.
                                   convnet_embedding=256), on a cached batch: what a
                                   change to train.flags costs a step
  variant, pairs from cache        the variant's graph fed by its pair graph from the cache
Input overhead = 1 - (steps/s fed by the pair graph) / (steps/s on a cached batch).
Each runs in its own subprocess, in alternation (A B C D E A B C D E ...), to even
out a shared machine's noise; the table shows the median of the repeats.

  python bench/train.py [--records_dir=tfrecords/celeba-mini[,tfrecords/celeba-10k-lowres]]
      [--batch_size=N] [--image_size=N] [--steps=40] [--repeats=3] [--kinds=cached,records,cache]
      [--variant=convnet_embedding=256 --kinds=cached,variant]
      [--variant=loss_pairs=all --kinds=cached,cache,variant,variant_cache]
      [--base=mixed_precision=none]   (train flags for every row: float32 here, as on AVX2-only CPUs)

batch_size and image_size default to train.flags' values.
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


def session_rate(records_dirs, flag_args, steps, kind):
    """Steps/s of the default run's training graph (train.flags' TrainConfig, with
    flag_args after it), fed by one batch held in variables (kind "cached") or by the pair
    graph from the records ("records") or from the decoded-once cache ("cache")."""
    import numpy as np
    import tensorflow as tf

    from siamese_graph.data import pairs, records
    from siamese_graph.training import graphs, loop, session_hooks

    v1 = tf.compat.v1
    config = default_config(*flag_args, "--cache" if kind in ("cache", "cache_normal", "variant_cache") else "--nocache")
    with tf.Graph().as_default():
        splits = [pairs.pairable_split(d, "train") for d in records_dirs]
        inputs = None
        if kind in ("cached", "variant"):
            rng = np.random.RandomState(0)
            shape = (config.batch_size, config.image_size, config.image_size, 3)
            ids = np.arange(config.batch_size)
            inputs = {"image_a": tf.Variable(rng.normal(size=shape).astype("float32"), trainable=False),
                      "image_b": tf.Variable(rng.normal(size=shape).astype("float32"), trainable=False),
                      "label": tf.constant([0, 1] * (config.batch_size // 2)),
                      "identity_a": tf.constant(ids), "identity_b": tf.constant(ids + ids % 2)}
            if config.identity_loss_weight > 0:  # the identity loss's classes (records.identity_classes)
                num_classes = records.identity_classes(splits, config.identity_loss_min_photos)[1]
                inputs["class_a"] = tf.constant(ids % num_classes)
                inputs["class_b"] = tf.constant((ids + ids % 2) % num_classes)
            if config.distills:  # the teacher's rows (graphs.with_teacher): random unit vectors here
                for side in "ab":
                    rows = rng.normal(size=(config.batch_size, config.convnet_embedding)).astype("float32")
                    inputs["teacher_" + side] = tf.constant(rows / np.linalg.norm(rows, axis=1, keepdims=True))
                    inputs["known_" + side] = tf.constant([True] * config.batch_size)
        graph = graphs.build_training_graph(splits, config, inputs=inputs)
        # train's default (--input_priority=idle): the hook train runs, called as its session would
        priority = None if kind in ("cached", "variant") or kind.endswith("_normal") else session_hooks.InputPriorityHook()
        with v1.Session(config=loop.session_config(config)) as sess:
            sess.run(v1.global_variables_initializer())
            if priority:
                priority.after_create_session(sess, None)
            for _ in range(5):
                sess.run(graph.train_op)
                if priority:
                    priority.after_run(None, None)
            start = time.time()
            for _ in range(steps):
                sess.run(graph.train_op)
            return steps / (time.time() - start)


def plain_session_rate(batch, image_size, embedding, steps):
    """The network keras_rate times (tower, Euclidean head, plain contrastive loss, Adam)
    as a session graph on one batch held in variables: the framework comparison."""
    import numpy as np
    import tensorflow as tf

    from siamese_graph.model import siamese
    from siamese_graph.model.nets import nets_factory

    v1 = tf.compat.v1
    with tf.Graph().as_default():
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
    import keras
    import numpy as np
    import tensorflow as tf

    from siamese_graph.model.nets import convnet

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


def default_config(*flag_args):
    """The TrainConfig of the default run: train.flags read by absl, as `train --flagfile` reads it,
    then flag_args ("--name=value") after it."""
    from absl import flags

    from siamese_graph import train_flags

    flags.FLAGS(["bench", "--flagfile=%s" % os.path.join(REPO, "train.flags")] + list(flag_args))
    return train_flags.config_from_flags()


def variant_flags(text):
    """"name=value,name=value" -> ["--name=value", ...]: train's own flags parse and check them."""
    return ["--" + item for item in (text or "").split(",") if item]


KINDS = [("cached", "default run, cached batch"), ("records", "default run, pairs from records"),
         ("cache", "default run, pairs from cache"),
         ("cache_normal", "default run, pairs from cache, input at normal priority"),
         ("plain", "plain net: session, cached"), ("keras", "plain net: keras tf.function"),
         ("variant", "variant, cached batch"), ("variant_cache", "variant, pairs from cache")]


def main():
    defaults = default_config()
    ap = argparse.ArgumentParser()
    ap.add_argument("--records_dir", default=os.path.join(REPO, "tfrecords", "celeba-mini"),
                    help="One or more record folders, comma-separated (train.flags trains on two).")
    ap.add_argument("--batch_size", type=int, default=defaults.batch_size)
    ap.add_argument("--image_size", type=int, default=defaults.image_size)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(k for k, _ in KINDS if not k.startswith("variant")))
    ap.add_argument("--variant", default="", help="Train flags changed in the variant row: name=value,...")
    ap.add_argument("--base", default="", help="Train flags changed in every row (default and variant): "
                    "name=value,... (e.g. mixed_precision=none: float32, as on a CPU without bfloat16).")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = ["--batch_size=%d" % args.batch_size, "--image_size=%d" % args.image_size] + variant_flags(args.base)
    if args.one:
        if args.one == "keras":
            rate = keras_rate(args.batch_size, args.image_size, defaults.convnet_embedding, args.steps)
        elif args.one == "plain":
            rate = plain_session_rate(args.batch_size, args.image_size, defaults.convnet_embedding, args.steps)
        else:
            flag_args = sizes + (variant_flags(args.variant) if args.one.startswith("variant") else [])
            rate = session_rate(args.records_dir.split(","), flag_args, args.steps, args.one)
        print(json.dumps({"rate": rate}))
        return
    kinds = [(k, label) for k, label in KINDS if k in args.kinds.split(",")]
    if any(k.startswith("variant") for k, _ in kinds):
        if not variant_flags(args.variant):
            sys.exit("--kinds=variant needs --variant=name=value[,...]")
        from absl import flags

        from siamese_graph import errors
        try:  # train's own checks: an unknown flag, a value of the wrong type or out of range
            default_config(*variant_flags(args.variant)).check()
        except (flags.Error, errors.Error) as e:
            sys.exit("--variant=%s: %s" % (args.variant, errors.one_line(e)))
    kinds = [(k, label.replace("variant", "variant (%s)" % args.variant)) for k, label in kinds]
    # pairs a step of each row: a variant may change --batch_size (the flags after it win)
    variant_batch = default_config("--batch_size=%d" % args.batch_size,
                                   *variant_flags(args.variant)).batch_size if args.variant else args.batch_size
    batch = {k: variant_batch if k.startswith("variant") else args.batch_size for k, _ in kinds}
    rates = {k: [] for k, _ in kinds}
    for _ in range(args.repeats):
        for kind, _ in kinds:
            r = subprocess.run([sys.executable, __file__, "--one", kind, "--records_dir", args.records_dir,
                                "--batch_size", str(args.batch_size), "--image_size", str(args.image_size),
                                "--steps", str(args.steps), "--variant", args.variant, "--base", args.base],
                               capture_output=True, text=True)
            if r.returncode:
                sys.exit(r.stderr[-3000:])
            rates[kind].append(json.loads(r.stdout.strip().splitlines()[-1])["rate"])
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("%s, %dx%d, %d pairs a step, %d timed steps x %d repeats; records: %s%s" % (
        defaults.net, args.image_size, args.image_size, args.batch_size, args.steps, args.repeats,
        args.records_dir, "; every row with " + args.base if args.base else ""))
    width = max(34, max(len(label) for _, label in kinds))
    print("%-*s %9s %9s  %s" % (width, "run", "steps/s", "pairs/s", "all repeats"))
    for kind, label in kinds:
        print("%-*s %9.2f %9.0f  %s" % (width, label, med[kind], med[kind] * batch[kind],
                                        " ".join("%.2f" % r for r in rates[kind])))
    if "cached" in med:
        for kind in ("records", "cache", "cache_normal"):
            if kind in med:
                print("input overhead, pairs from %s (1 - %s / cached batch): %.1f%%"
                      % (kind, kind, 100 * (1 - med[kind] / med["cached"])))
        if "variant" in med:
            print("variant / default, cached batch: %.3fx the steps/s, %.3fx the pairs/s" % (
                med["variant"] / med["cached"], med["variant"] * variant_batch / (med["cached"] * args.batch_size)))
    if "variant" in med and "variant_cache" in med:
        print("input overhead, variant (1 - variant from cache / variant cached batch): %.1f%%"
              % (100 * (1 - med["variant_cache"] / med["variant"])))
    if "cache" in med and "variant_cache" in med:
        print("variant / default, pairs from cache: %.3fx the steps/s" % (med["variant_cache"] / med["cache"]))
    if "plain" in med and "keras" in med:
        print("plain net, session / keras: %.2fx (keras costs %.0f ms more a step)" % (
            med["plain"] / med["keras"], 1000 * (1 / med["keras"] - 1 / med["plain"])))


if __name__ == "__main__":
    main()
