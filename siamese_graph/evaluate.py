r"""Evaluates a trained checkpoint on a verification protocol, or K-shot N-way identification.

  # balanced pairs from a records split (deterministic)
  python -m siamese_graph.evaluate --checkpoint_dir=runs/convnet --records_dir=tfrecords/celeba-mini --split=test
  # LFW's pairs.txt, or a list of `path_a path_b label [fold]`
  python -m siamese_graph.evaluate --checkpoint_dir=runs/convnet --pairs=pairs.txt --pairs_format=lfw \
      --image_root=lfw --crop=center:0.6
  # balanced pairs of photo files from a folder-per-person directory (through --align)
  python -m siamese_graph.evaluate --checkpoint_dir=runs/convnet --folder=DIR --num_pairs=2000
  # K-shot N-way identification on a folder-per-person directory or a records split
  python -m siamese_graph.evaluate --checkpoint_dir=runs/convnet --folder=DIR --kshot=1 --nway=5

Verification writes OUTPUT_DIR/report.json (ROC AUC, EER, best accuracy and its
threshold, k-fold accuracy with thresholds chosen on the other folds, TAR at
FAR 1e-2 and 1e-3), roc.png and distances.png, and
a TensorBoard PR curve, and pairs.tsv (the pairs scored, in the form --pairs reads:
records' pairs can be scored again from the photo files they came from, e.g.
through --align). Photo files (--pairs, --folder) go through --align (default
mtcnn: detect and align each face); a pair with a photo where no face is found
is left out of the figures and counted (no_face_pairs), its photo named
(no_face_photos, and OUTPUT_DIR/no_face.txt). --calibrate saves the best-accuracy threshold next to
the checkpoint for `score` and `gallery`. Each distinct photo's tower output is
computed once and reused across pairs.
"""
import json
import os

import numpy as np
import tensorflow as tf
from absl import flags

from siamese_graph import common_flags, fileio
from siamese_graph.data import pair_lists, records
from siamese_graph.data import photos as photo_files
from siamese_graph.data.datasets import folder as folder_layout
from siamese_graph.errors import UserError
from siamese_graph.inference import exported, metrics
from siamese_graph.progress import Progress

common_flags.declare("checkpoint_dir", "checkpoint_path", "crop", "flip_average", "records_dir", "split", "pairs",
                     "image_root", "folder", "num_pairs", "output_dir", "align", "min_face_probability")
flags.DEFINE_enum("pairs_format", "list", ["lfw", "list"], "lfw: LFW's pairs.txt; list: path_a path_b label [fold].")
flags.DEFINE_integer("pairs_seed", 0, "Seed for the pairs drawn from --records_dir and for episodes.")
flags.DEFINE_integer("folds", 10, "Folds for k-fold accuracy when the pairs carry none.")
flags.DEFINE_bool("calibrate", False, "Save the best-accuracy threshold next to the checkpoint.")
flags.DEFINE_integer("kshot", 0, "K-shot N-way identification: photos enrolled per identity (0: off).")
flags.DEFINE_integer("nway", 5, "K-shot N-way identification: identities per episode.")
flags.DEFINE_integer("episodes", 1000, "K-shot N-way identification: episodes.")
flags.DEFINE_string("degrade", None, "Degrade every photo before scoring, as another source would: "
                    "grayscale, downscale:K (to 1/K of each side and back), or both (grayscale,downscale:4).")
FLAGS = flags.FLAGS
DEFAULT_SPLIT = "test"


def records_photos(records_dir, split):
    """[(filename, identity, encoded bytes)] of a records split."""
    info = records.RecordSet(records_dir).split(split)
    out = []
    with tf.Graph().as_default():
        ds = tf.data.TFRecordDataset(info.all_files).map(records.parse_example).batch(256)
        nxt = tf.compat.v1.data.make_one_shot_iterator(ds).get_next()
        with tf.compat.v1.Session() as sess:
            try:
                while True:
                    e = sess.run(nxt)
                    out += [(f.decode(), int(i), enc) for f, i, enc in
                            zip(e["image/filename"], e["image/identity"], e["image/encoded"])]
            except tf.errors.OutOfRangeError:
                pass
            except tf.errors.DataLossError as e:
                raise UserError("%s: corrupt shard (%s); rewrite it with make_records --overwrite"
                                % (info.find_corrupt_shard() or info, e.message.splitlines()[0][:120]))
    return out


def folder_photos(root):
    """[(path, person)] of a folder-per-person directory."""
    return [(path, person) for person, paths in folder_layout.walk(root) for path in paths]


def verification_report(distances, labels, folds):
    d, y = np.asarray(distances), np.asarray(labels)
    acc, threshold = metrics.best_accuracy(d, y)
    eer, eer_threshold = metrics.equal_error_rate(d, y)
    kmean, kstd, per_fold = metrics.kfold_accuracy(d, y, folds)
    return {"pairs": int(len(y)), "same_pairs": int((y == 0).sum()),
            "auc": metrics.roc_auc(d, y), "eer": eer, "eer_threshold": eer_threshold,
            "best_accuracy": acc, "best_threshold": threshold,
            "kfold_accuracy_mean": kmean, "kfold_accuracy_std": kstd, "folds": len(per_fold),
            "tar_at_far_1e-2": metrics.tar_at_far(d, y, 1e-2),
            "tar_at_far_1e-3": metrics.tar_at_far(d, y, 1e-3),
            "mean_distance_same": float(d[y == 0].mean()),
            "mean_distance_different": float(d[y == 1].mean())}


def save_plots(out_dir, distances, labels, report):
    """roc.png and distances.png (matplotlib is an install dependency)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d, y = np.asarray(distances), np.asarray(labels)
    far, tar, _ = metrics.roc(d, y)
    written = []
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(far, tar, lw=2, label="AUC %.3f" % report["auc"])
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("false accept rate (different pairs called same)")
    ax.set_ylabel("true accept rate (same pairs called same)")
    ax.set_title("ROC, %d pairs" % len(y))
    ax.legend(loc="lower right")
    written.append(_save(fig, os.path.join(out_dir, "roc.png")))
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(d.min(), d.max(), 50)
    ax.hist(d[y == 0], bins, alpha=0.6, label="same (0)")
    ax.hist(d[y == 1], bins, alpha=0.6, label="different (1)")
    ax.axvline(report["best_threshold"], color="k", ls="--",
               label="threshold %.3f (acc %.3f)" % (report["best_threshold"], report["best_accuracy"]))
    ax.set_xlabel("distance Dw")
    ax.set_ylabel("pairs")
    ax.legend()
    written.append(_save(fig, os.path.join(out_dir, "distances.png")))
    plt.close("all")
    return written


def _save(fig, path):
    fig.tight_layout()
    with fileio.atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def write_pr_curve(out_dir, distances, labels, step, num_thresholds=201):
    """A TensorBoard PR curve of "same" with score 1 - Dw / max(Dw), written with
    TensorBoard's own pr_curve summary (tensorboard.plugins.pr_curve.summary)."""
    from tensorboard.plugins.pr_curve import summary as pr_summary

    d = np.asarray(distances, np.float64)
    score = 1 - d / max(d.max(), 1e-12)
    positive = np.asarray(labels) == 0
    thresholds = np.linspace(0, 1, num_thresholds)
    called = score[None, :] >= thresholds[:, None]
    tp = (called & positive).sum(1).astype(np.float32)
    fp = (called & ~positive).sum(1).astype(np.float32)
    fn = positive.sum() - tp
    tn = (~positive).sum() - fp
    summary = pr_summary.raw_data_pb(
        "verification", true_positive_counts=tp, false_positive_counts=fp, true_negative_counts=tn,
        false_negative_counts=fn, precision=tp / np.maximum(tp + fp, 1), recall=tp / np.maximum(tp + fn, 1),
        num_thresholds=num_thresholds)
    with tf.Graph().as_default():  # the v1 writer, in its own graph whether eager is on or not
        writer = tf.compat.v1.summary.FileWriter(out_dir)
        writer.add_summary(summary, step or 0)
        writer.close()


def verify_pairs(model, pairs, load, out_dir, source, min_face_probability=0.5):
    """Scores (a, b, label, fold) pairs and writes report.json, the plots, a PR curve and
    pairs.tsv. Pairs with a photo where no face was found (load gave None) are left
    out and counted, and those photos named (the report's no_face_photos, and
    no_face.txt beside it)."""
    distances, distinct, face_a, face_b = model.pair_distances(pairs, load, with_faces=True)
    found = np.isfinite(distances)
    no_face = [p for p, ok in zip(pairs, found) if not ok]
    # a photo without a face has no features and a face probability of exactly 0
    faceless = sorted({p[side] for p, ok, fa, fb in zip(pairs, found, face_a, face_b) if not ok
                       for side, prob in ((0, fa), (1, fb)) if prob == 0})
    pairs, distances = [p for p, ok in zip(pairs, found) if ok], distances[found]
    if no_face and (not pairs or len({y for _, _, y, _ in pairs}) < 2):
        raise UserError("no face found in the photos of %d of %d pairs: too few pairs left to measure"
                        % (len(no_face), len(no_face) + len(pairs)))
    low = np.concatenate([face_a[found], face_b[found]]) < min_face_probability
    labels = [y for _, _, y, _ in pairs]
    folds = [f for _, _, _, f in pairs]
    report = verification_report(distances, labels, folds)
    report.update(source=source, checkpoint=model.checkpoint, distinct_photos=distinct,
                  crop=list(model.crop), flip_average=model.flip_average, no_face_pairs=len(no_face),
                  no_face_photos=faceless, photo_sides_below_face_probability=int(low.sum()))
    os.makedirs(out_dir, exist_ok=True)
    fileio.write_text(os.path.join(out_dir, "no_face.txt"), "".join(p + "\n" for p in faceless))
    fileio.write_text(os.path.join(out_dir, "pairs.tsv"), pair_lists.format_list(pairs))
    report["plots"] = save_plots(out_dir, distances, labels, report)
    write_pr_curve(out_dir, distances, labels, model.step)
    fileio.write_json(os.path.join(out_dir, "report.json"), report, sort_keys=False)
    return report, distances


def episode_pool(items, k, n):
    """Identities with at least k + 1 photos for K-shot N-way episodes: (ids, {id: [keys]})."""
    by_id = {}
    for key, identity in items:
        by_id.setdefault(identity, []).append(key)
    eligible = sorted(i for i, ks in by_id.items() if len(ks) >= k + 1)
    if len(eligible) < n:
        raise UserError("%d-shot %d-way needs %d identities with %d photos; there are %d"
                        % (k, n, n, k + 1, len(eligible)))
    return eligible, by_id


def main(argv):
    del argv
    if not FLAGS.checkpoint_dir:
        raise UserError("--checkpoint_dir is required")
    common_flags.refuse_threshold("evaluate", "it reports the best one, best_threshold; --calibrate saves it "
                                  "for score, gallery and export")
    sources = [bool(FLAGS.pairs), bool(FLAGS.records_dir), bool(FLAGS.folder)]
    if sum(sources) != 1:
        raise UserError("give one of --pairs, --records_dir or --folder")
    if FLAGS["kshot"].present and FLAGS.kshot < 1:
        raise UserError("--kshot=%d: must be at least 1 (photos enrolled per identity in each episode)" % FLAGS.kshot)
    split = FLAGS.split or DEFAULT_SPLIT
    if FLAGS.folds < 2:
        raise UserError("--folds=%d: k-fold accuracy needs at least 2 folds" % FLAGS.folds)
    if (FLAGS.records_dir or FLAGS.folder) and not FLAGS.kshot and FLAGS.num_pairs < 2 * FLAGS.folds:
        raise UserError("--num_pairs=%d: needs at least 2 x --folds (%d) so that every fold holds a "
                        "same and a different pair" % (FLAGS.num_pairs, 2 * FLAGS.folds))
    if FLAGS.kshot and (FLAGS.nway < 2 or FLAGS.episodes < 1):
        raise UserError("--nway must be at least 2 and --episodes at least 1")
    try:
        degrade = photo_files.parse_degrade(FLAGS.degrade) if FLAGS.degrade else []
    except ValueError as e:
        raise UserError("--degrade=%s: %s" % (FLAGS.degrade, e))
    if degrade and FLAGS.kshot:
        raise UserError("--degrade applies to verification pairs, not to --kshot episodes")
    if FLAGS.output_dir:
        fileio.check_writable_dir(FLAGS.output_dir, "output_dir")
    model = common_flags.restored_model()
    if isinstance(model, exported.ExportedModel):
        if FLAGS.calibrate:
            raise UserError("--calibrate: %s is an exported SavedModel, its threshold inside its graph; calibrate "
                            "the train_dir it came from and export again" % model.path)
        if not FLAGS.output_dir and not FLAGS.kshot:
            raise UserError("--output_dir is required for an exported SavedModel (its folder is what TF Serving "
                            "loads: the report is not written into it)")
    if FLAGS.kshot:
        report = run_kshot(model)
        print(json.dumps(report, indent=1))
        return
    if FLAGS.records_dir:
        photos = records_photos(FLAGS.records_dir, split)
        data = {name: enc for name, _, enc in photos}
        pairs = pair_lists.balanced_from_identities([p[0] for p in photos], [p[1] for p in photos],
                                                    FLAGS.num_pairs, FLAGS.pairs_seed, FLAGS.folds)
        load = data.get  # records hold RGB JPEG bytes, decoded in the graph as in training
        source = "%s:%s" % (FLAGS.records_dir, split)
        default_out = "eval-%s-%s" % (os.path.basename(os.path.normpath(FLAGS.records_dir)), split)
    elif FLAGS.folder:
        items = folder_photos(FLAGS.folder)
        pairs = pair_lists.balanced_from_identities([p for p, _ in items], [i for _, i in items],
                                                    FLAGS.num_pairs, FLAGS.pairs_seed, FLAGS.folds)
        load = common_flags.photo_loader()
        source = FLAGS.folder
        default_out = "eval-%s" % os.path.basename(os.path.normpath(FLAGS.folder))
    else:
        read = pair_lists.read_lfw if FLAGS.pairs_format == "lfw" else pair_lists.read_list
        pairs = read(FLAGS.pairs, FLAGS.image_root)
        pair_lists.check_photos(pairs)
        load = common_flags.photo_loader()
        source = FLAGS.pairs
        default_out = "eval-%s" % os.path.splitext(os.path.basename(FLAGS.pairs))[0]
    if degrade:
        load = degraded(model, load, degrade)
        source += " degraded %s" % FLAGS.degrade
        default_out += "-" + FLAGS.degrade.replace(":", "").replace(",", "-")
    out_dir = FLAGS.output_dir or os.path.join(FLAGS.checkpoint_dir, default_out)
    fileio.check_writable_dir(out_dir, "output_dir")
    if FLAGS.calibrate:
        fileio.check_writable_dir(FLAGS.checkpoint_dir, "checkpoint_dir")
    report, _ = verify_pairs(model, pairs, load, out_dir, source, FLAGS.min_face_probability)
    if FLAGS.calibrate:
        if report["auc"] < 0.5:
            raise UserError("--calibrate: AUC %.3f is below chance on %s: are its labels inverted (0 = same "
                            "person, 1 = different)? No threshold saved; the report is in %s"
                            % (report["auc"], source, out_dir))
        report["threshold_file"] = model.save_threshold(report["best_threshold"], source)
    report["output_dir"] = out_dir
    print(json.dumps(report, indent=1))


def degraded(model, load, steps):
    """load, with every photo degraded (photo_files.degrade) after decoding as scoring does."""
    def load_degraded(key):
        photo = load(key)
        if photo is None:
            return None
        return photo_files.degrade(model.decode(photo) if isinstance(photo, bytes) else photo, steps)
    return load_degraded


def run_kshot(model):
    """K-shot N-way identification: each episode draws N identities with K + 1
    photos, enrolls K of each and classifies the other one of each to the
    identity with the smallest mean distance. Mean and std over episodes."""
    if FLAGS.folder:
        items = folder_photos(FLAGS.folder)
        load = common_flags.photo_loader()
        source = FLAGS.folder
    elif FLAGS.records_dir:
        photos = records_photos(FLAGS.records_dir, FLAGS.split or DEFAULT_SPLIT)
        data = {name: enc for name, _, enc in photos}
        items = [(name, identity) for name, identity, _ in photos]
        load = data.get  # records hold RGB JPEG bytes, decoded in the graph as in training
        source = "%s:%s" % (FLAGS.records_dir, FLAGS.split or DEFAULT_SPLIT)
    else:
        raise UserError("--kshot needs --folder or --records_dir")
    k, n = FLAGS.kshot, FLAGS.nway
    index, feats = model.embed_unique([key for key, _ in items], load)
    found = np.isfinite(feats).all(axis=1)
    no_face = [key for key, _ in items if not found[index[key]]]
    items = [(key, i) for key, i in items if found[index[key]]]  # no face found: left out, counted
    eligible, by_id = episode_pool(items, k, n)
    rng = np.random.RandomState(FLAGS.pairs_seed)
    accs = []
    progress = Progress(FLAGS.episodes, "episodes")
    for episode in range(FLAGS.episodes):
        progress.update(episode)
        ids = rng.choice(len(eligible), n, replace=False)
        support, queries = [], []
        for c, i in enumerate(ids):
            photos = by_id[eligible[i]]
            pick = rng.choice(len(photos), k + 1, replace=False)
            support += [(c, index[photos[j]]) for j in pick[:k]]
            queries.append((c, index[photos[pick[k]]]))
        qa = np.repeat([q for _, q in queries], len(support))
        sb = np.tile([s for _, s in support], len(queries))
        d = model.distance(feats[qa], feats[sb]).reshape(len(queries), n, k).mean(axis=2)
        accs.append(float(np.mean(d.argmin(axis=1) == np.arange(n))))
    return {"source": source, "kshot": k, "nway": n, "episodes": FLAGS.episodes,
            "identities": len(eligible), "accuracy_mean": float(np.mean(accs)),
            "accuracy_std": float(np.std(accs)), "chance": 1.0 / n, "checkpoint": model.checkpoint,
            "no_face_photos": sorted(no_face)}


def run():
    common_flags.run(main, __name__)


if __name__ == "__main__":
    run()
