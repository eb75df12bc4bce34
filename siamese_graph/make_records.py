r"""Converts a face dataset into sharded TFRecords with a manifest.

  python -m siamese_graph.make_records --dataset=celeba --data_dir=PATH/celeba
  python -m siamese_graph.make_records --dataset=folder --data_dir=PATH/lfw --test_fraction=0.1

Output in --output_dir (default tfrecords/<basename of data_dir>):
  <split>-NNNNN-of-MMMMM.tfrecord   TF-Slim naming; schema in siamese_graph/records.py
  manifest.json                     counts, shards with record counts and sha256, skips
  labels.txt                        "<index>:<identity name>" (TF-Slim's label file)

Record order (what the pair pipeline relies on): within a split, every identity's
photos are contiguous and in one shard; identities are spread over the shards in
a seeded order so shards hold about the same number of photos. The manifest lists
each shard's identity blocks in order: [[identity index, photo count], ...].

Shards are written under a hidden temporary name and renamed when complete; a
rerun with the same inputs and flags keeps complete shards and redoes the rest;
the same inputs and flags give byte-identical shards.
"""
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import threading
import time
import warnings

from absl import app, flags, logging
from PIL import Image

from siamese_graph import records
from siamese_graph.datasets import celeba, folder
from siamese_graph.cli import define, run_main
from siamese_graph.errors import UserError

FLAGS = flags.FLAGS

flags.DEFINE_enum("dataset", "celeba", ["celeba", "folder"], "Source layout.")
flags.DEFINE_string("data_dir", None, "Source folder.")
flags.DEFINE_string("output_dir", None, "Output folder; default tfrecords/<basename of data_dir>.")
flags.DEFINE_integer("num_shards", 16, "Shards per split at most (fewer if the split has fewer identities).")
flags.DEFINE_integer("num_workers", 2, "Worker processes.")
flags.DEFINE_bool("allow_missing", False, "CelebA: write the photos present when some listed ones are missing.")
flags.DEFINE_bool("strict", False, "Fail on any skipped photo instead of recording the skip.")
flags.DEFINE_bool("overwrite", False, "Start over, deleting what --output_dir holds.")
flags.DEFINE_bool("verify", False, "Read every shard back: counts, checksums, identities, decoding.")
flags.DEFINE_float("val_fraction", 0.0, "Folder layout without split folders: share of identities for val.")
flags.DEFINE_float("test_fraction", 0.1, "Folder layout without split folders: share of identities for test.")
define("integer", "seed", 0, "Seed for identity order across shards and folder splits.")
flags.DEFINE_integer("jpeg_quality", 95, "Quality for photos that must be re-encoded (not RGB JPEG).")

PROGRESS_DIR = ".progress"
RECORD_ORDER = "identity_blocks"


class PhotoSkip(Exception):
    """A photo that cannot be stored; the reason goes into the manifest."""


def load_photo(path, jpeg_quality=95):
    """Returns (RGB JPEG bytes, height, width). Raises PhotoSkip with a reason."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PhotoSkip("unreadable: %s" % e.strerror)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            fmt, (width, height) = im.format, im.size
            keep = fmt == "JPEG" and im.mode == "RGB"
            if keep:  # stored as is: decoding at 1/8 scale still reads every byte, twice as fast
                im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            im.load()  # truncated or corrupt data fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoSkip("over Pillow's decompression-bomb limit of %d pixels" % Image.MAX_IMAGE_PIXELS)
    except Image.UnidentifiedImageError:
        raise PhotoSkip("not an image")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise PhotoSkip("corrupt image: %s" % str(e).splitlines()[0][:100])
    if keep:
        return data, height, width
    out = io.BytesIO()
    im.convert("RGB").save(out, format="JPEG", quality=jpeg_quality)
    return out.getvalue(), height, width


def plan_shards(listing, num_shards, seed):
    """{split: [shard, ...]} where a shard is [(identity index, [Photo, ...]), ...].

    Identities are contiguous and never cut across shards; each goes to the
    shard with the fewest photos so far, in a seeded order.
    """
    index = {name: i for i, name in enumerate(listing.identity_names)}
    by_split = {}
    for p in listing.photos:
        by_split.setdefault(p.split, {}).setdefault(index[p.identity_name], []).append(p)
    plan = {}
    for split in records.SPLITS:
        people = by_split.get(split)
        if not people:
            continue
        order = sorted(people, key=lambda i: hashlib.sha1(b"%d:%d" % (seed, i)).hexdigest())
        shards = [[] for _ in range(max(1, min(num_shards, len(order))))]
        sizes = [0] * len(shards)
        for i in order:
            k = sizes.index(min(sizes))
            shards[k].append((i, sorted(people[i], key=lambda p: p.relname)))
            sizes[k] += len(people[i])
        plan[split] = shards
    return plan


def _write_json(path, obj):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_counter = None  # photos done, shared with the workers for progress lines


def _init_worker(counter):
    global _counter
    _counter = counter


def write_shard(task):
    """Writes one shard atomically; returns its manifest entry. Runs in a worker."""
    import tensorflow as tf  # noqa: the parent may not have loaded it yet

    out_dir, name, blocks, identity_names, jpeg_quality = task
    final = os.path.join(out_dir, name)
    tmp = os.path.join(out_dir, "." + name + ".tmp")
    written, skipped = [], []
    with tf.io.TFRecordWriter(tmp) as writer:
        for identity, photos in blocks:
            count = 0
            for p in photos:
                try:
                    data, h, w = load_photo(p.path, jpeg_quality)
                    writer.write(records.encode_example(data, h, w, p.relname, identity,
                                                        identity_names[identity]))
                    count += 1
                except PhotoSkip as e:
                    skipped.append([p.relname, str(e)])
                if _counter is not None:
                    with _counter.get_lock():
                        _counter.value += 1
            if count:
                written.append([identity, count])
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    entry = {"file": name, "records": sum(c for _, c in written), "bytes": os.path.getsize(tmp),
             "sha256": records.sha256(tmp), "identities": written, "skipped": skipped}
    os.replace(tmp, final)
    _write_json(os.path.join(out_dir, PROGRESS_DIR, name + ".json"), entry)
    return entry


def _fingerprint(plan, config):
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for split in sorted(plan):
        for shard in plan[split]:
            for identity, photos in shard:
                for p in photos:
                    st = os.stat(p.path)
                    h.update(("%s|%s|%d|%d|%d\n" % (split, p.relname, identity, st.st_size,
                                                   st.st_mtime_ns)).encode())
    return h.hexdigest()


def _prepare_output(out_dir, fingerprint, overwrite):
    """Readies out_dir; returns the shard entries already complete (a resume)."""
    progress = os.path.join(out_dir, PROGRESS_DIR)
    if overwrite and os.path.isdir(out_dir):
        for name in os.listdir(out_dir):
            path = os.path.join(out_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(progress, exist_ok=True)
    fp_path = os.path.join(progress, "fingerprint")
    existing = [n for n in os.listdir(out_dir) if n != PROGRESS_DIR]
    if os.path.exists(fp_path):
        with open(fp_path) as f:
            if f.read().strip() != fingerprint:
                raise UserError("%s holds records from other inputs or flags; pass --overwrite "
                                "to start over" % out_dir)
    elif existing:
        raise UserError("%s is not empty and holds no run of make_records; pass --overwrite "
                        "or choose another --output_dir" % out_dir)
    else:
        with open(fp_path, "w") as f:
            f.write(fingerprint + "\n")
    done = {}
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if name.startswith(".") and name.endswith(".tmp"):
            os.remove(path)  # left by a killed run
            continue
        side = os.path.join(progress, name + ".json")
        if name.endswith(".tfrecord") and os.path.exists(side):
            with open(side) as f:
                entry = json.load(f)
            if entry["bytes"] == os.path.getsize(path) and entry["sha256"] == records.sha256(path):
                done[name] = entry
    return done


class _Progress(threading.Thread):
    """Logs photos/s and ETA every few seconds from the shared counter."""

    def __init__(self, counter, total, every=5.0):
        super().__init__(daemon=True)
        self.counter, self.total, self.every = counter, total, every
        self.stop = threading.Event()
        self.start_time = time.time()

    def run(self):
        while not self.stop.wait(self.every):
            done = self.counter.value
            rate = done / max(time.time() - self.start_time, 1e-9)
            eta = (self.total - done) / rate if rate > 0 else float("inf")
            logging.info("%d/%d photos, %.0f photos/s, ETA %.0fs", done, self.total, rate, eta)


def convert(listing, out_dir, num_shards=16, num_workers=2, seed=0, overwrite=False,
            strict=False, jpeg_quality=95, flags_used=None):
    """Writes the shards, labels.txt and manifest.json; returns the manifest."""
    if not listing.photos:
        raise UserError("%s: no photos found" % listing.source.get("data_dir", out_dir))
    if len(listing.identity_names) < 2:
        raise UserError("only one identity found: pairs of different people are impossible")
    plan = plan_shards(listing, num_shards, seed)
    config = {"schema_version": records.SCHEMA_VERSION, "num_shards": num_shards, "seed": seed,
              "jpeg_quality": jpeg_quality, "source": listing.source}
    fingerprint = _fingerprint(plan, config)
    manifest_path = os.path.join(out_dir, records.MANIFEST)
    os.makedirs(out_dir, exist_ok=True)
    done = _prepare_output(out_dir, fingerprint, overwrite)
    tasks = []
    for split, shards in plan.items():
        for k, blocks in enumerate(shards):
            name = records.shard_name(split, k, len(shards))
            if name not in done:
                tasks.append((out_dir, name, blocks, listing.identity_names, jpeg_quality))
    total = sum(len(ph) for t in tasks for _, ph in t[2])
    logging.info("%s: %d photos in %d shards to write (%d shards complete from an earlier run), "
                 "%d workers", out_dir, total, len(tasks), len(done), num_workers)
    counter = multiprocessing.get_context("fork").Value("q", 0)
    progress = _Progress(counter, total)
    progress.start()
    start = time.time()
    try:
        if num_workers <= 1 or len(tasks) <= 1:
            _init_worker(counter)
            results = [write_shard(t) for t in tasks]
        else:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(num_workers, initializer=_init_worker, initargs=(counter,)) as pool:
                results = list(pool.imap_unordered(write_shard, tasks))
    finally:
        progress.stop.set()
        _init_worker(None)
    elapsed = time.time() - start
    for entry in results:
        done[entry["file"]] = entry
    manifest = _manifest(plan, done, listing, config, flags_used or {})
    skipped = manifest["skipped"]
    if strict and skipped:
        raise UserError("%s: %s (%d photos skipped; --strict)" % (skipped[0][0], skipped[0][1], len(skipped)))
    written = {i for s in manifest["splits"].values() for sh in s["shards"] for i, _ in sh["identities"]}
    if len(written) < 2:
        raise UserError("%d identities left after skipping %d bad photos: pairs of different people "
                        "are impossible" % (len(written), len(skipped)))
    with open(os.path.join(out_dir, "." + records.LABELS + ".tmp"), "w") as f:
        f.writelines("%d:%s\n" % (i, n) for i, n in enumerate(listing.identity_names))
    os.replace(os.path.join(out_dir, "." + records.LABELS + ".tmp"), os.path.join(out_dir, records.LABELS))
    _write_json(manifest_path, manifest)
    shutil.rmtree(os.path.join(out_dir, PROGRESS_DIR), ignore_errors=True)
    logging.info("wrote %d photos in %.1fs (%.0f photos/s)", total, elapsed, total / max(elapsed, 1e-9))
    return manifest


def _manifest(plan, done, listing, config, flags_used):
    splits = {}
    skipped = []
    for split, shards in plan.items():
        entries = [done[records.shard_name(split, k, len(shards))] for k in range(len(shards))]
        for e in entries:
            skipped += e["skipped"]
        people = {i for e in entries for i, _ in e["identities"]}
        splits[split] = {"photos": sum(e["records"] for e in entries), "identities": len(people),
                         "shards": [{k: v for k, v in e.items() if k != "skipped"} for e in entries]}
    return {
        "schema_version": records.SCHEMA_VERSION,
        "source": listing.source,
        "flags": flags_used,
        "record_order": RECORD_ORDER,
        "record_order_doc": "within a split each identity's photos are contiguous and in one "
                            "shard; shards[].identities lists [identity index, count] in order",
        "num_identities": len(listing.identity_names),
        "listed_but_missing": listing.missing,
        "splits": splits,
        "skipped": sorted(skipped),
    }


def verify(records_dir):
    """Reads every shard back with tf.data; returns the number of records checked."""
    import tensorflow as tf

    manifest = records.load_manifest(records_dir)
    checked = 0
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            path = os.path.join(records_dir, shard["file"])
            if records.sha256(path) != shard["sha256"]:
                raise UserError("%s: checksum differs from the manifest" % path)
            expected = [i for i, c in shard["identities"] for _ in range(c)]
            ds = tf.data.TFRecordDataset(path).map(records.parse_example)
            ds = ds.map(lambda e: (e["image/identity"],
                                   tf.shape(tf.io.decode_jpeg(e["image/encoded"], channels=3))),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            got = []
            try:
                for identity, _ in ds.as_numpy_iterator():
                    got.append(int(identity))
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
                raise UserError("%s: unreadable record or image (%s)" % (path, e.message.splitlines()[0]))
            if got != expected:
                raise UserError("%s: %d records with identities not as the manifest lists (%d expected)"
                                % (path, len(got), len(expected)))
            checked += len(got)
    return checked


def _summary(manifest):
    lines = ["%-6s %8s %10s %7s" % ("split", "photos", "identities", "shards")]
    for split, s in manifest["splits"].items():
        lines.append("%-6s %8d %10d %7d" % (split, s["photos"], s["identities"], len(s["shards"])))
    lines.append("skipped: %d  listed but missing: %d" % (len(manifest["skipped"]), manifest["listed_but_missing"]))
    return "\n".join(lines)


def main(argv):
    del argv
    if not FLAGS.data_dir:
        raise UserError("--data_dir is required")
    if FLAGS.num_shards < 1 or FLAGS.num_workers < 1:
        raise UserError("--num_shards and --num_workers must be at least 1")
    data_dir = os.path.abspath(FLAGS.data_dir)
    if FLAGS.dataset == "celeba":
        listing = celeba.read(data_dir, allow_missing=FLAGS.allow_missing)
    else:
        listing = folder.read(data_dir, FLAGS.val_fraction, FLAGS.test_fraction, FLAGS.seed)
    listing.source.update({"dataset": FLAGS.dataset, "data_dir": data_dir})
    out_dir = FLAGS.output_dir or os.path.join("tfrecords", os.path.basename(data_dir.rstrip("/")))
    manifest_path = os.path.join(out_dir, records.MANIFEST)
    flags_used = {k: FLAGS[k].value for k in ("dataset", "num_shards", "seed", "jpeg_quality",
                                              "allow_missing", "val_fraction", "test_fraction")}
    if os.path.isfile(manifest_path) and not FLAGS.overwrite:
        manifest = records.load_manifest(out_dir)
        if manifest.get("flags") != flags_used or manifest.get("source") != listing.source:
            raise UserError("%s: records from other inputs or flags are here; pass --overwrite" % out_dir)
        logging.info("%s is complete already (pass --overwrite to rewrite)", out_dir)
    else:
        manifest = convert(listing, out_dir, FLAGS.num_shards, FLAGS.num_workers, FLAGS.seed,
                           FLAGS.overwrite, FLAGS.strict, FLAGS.jpeg_quality, flags_used)
    if FLAGS.verify:
        n = verify(out_dir)
        logging.info("verified %d records: counts, checksums, identities and decoding", n)
    print(_summary(manifest))
    print("records in %s" % out_dir)


def run():
    app.run(run_main(main))


if __name__ == "__main__":
    run()
