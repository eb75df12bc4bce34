"""Writing a face dataset as sharded TFRecords with a manifest: the library part of
make_records (plain arguments, no flags), shared by its local and Beam runners.

Record order (what the pair pipeline relies on): within a split, every identity's
photos are contiguous and in one shard; identities are spread over the shards in
a seeded order so shards hold about the same number of photos (plan_shards). The
manifest lists each shard's identity blocks in order: [[identity index, photo count], ...].

Shards are written under a hidden temporary name and renamed when complete
(write_shard); a rerun with the same inputs and flags keeps complete shards and
redoes the rest; the same inputs and flags give byte-identical shards. The output
folder is a local path or a URL of any filesystem TF writes (fileio).
"""
import errno
import hashlib
import io
import json
import multiprocessing
import os
import re
import threading
import time

from absl import logging
from PIL import Image

from siamese_graph import errors, fileio
from siamese_graph.data import photos as photo_files
from siamese_graph.data import records
from siamese_graph.errors import DataError
from siamese_graph.progress import worker_count

PROGRESS_DIR = ".progress"
# What make_records writes in an output folder: the only names --overwrite removes.
_OWN_FILE = re.compile(r"^((train|val|test)-\d{5}-of-\d{5}\.tfrecord|manifest\.json|labels\.txt|"
                       r"\.progress|\..*\.tmp)$")
RECORD_ORDER = "identity_blocks"
ALIGNED_DIR = "aligned"  # make_records --align_faces's aligned photos: kept beside the records
# Not records, but kept beside them: never counted as foreign, never removed by --overwrite
# (the lock is held while make_records runs; align_listing owns the aligned photos).
BESIDE = (ALIGNED_DIR, fileio.LOCK_FILE)


class PhotoSkip(Exception):
    """A photo that cannot be stored; the reason goes into the manifest."""


def load_photo(path, jpeg_quality=95):
    """Returns (RGB JPEG bytes, height, width). Raises PhotoSkip with a reason.

    RGB JPEGs are stored byte for byte (checked by decoding at 1/8 scale, which
    still reads every byte); anything else is converted by photos.to_rgb and
    re-encoded at jpeg_quality."""
    try:
        data, im, (width, height) = photo_files.read(path, draft_scale=8)
        if photo_files.is_rgb_jpeg(im):
            return data, height, width
        rgb = photo_files.to_rgb(im)
    except photo_files.PhotoError as e:
        raise PhotoSkip(str(e))
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="JPEG", quality=jpeg_quality)
    return out.getvalue(), height, width


# Threads of a process that has imported TensorFlow and run no op (measured: 2).
QUIET_THREADS = 2


def worker_context():
    """The multiprocessing context make_records' workers start from: fork, the
    cheapest, from a process that runs no TensorFlow thread pools yet (a fresh
    command: TensorFlow imported, no op run); else a fork server that has imported
    this module and nothing else, since a fork of a process whose TensorFlow or
    logging threads hold locks can deadlock the child (an in-process caller that ran
    a graph before, a test). The fork server costs one import of TensorFlow (about
    2.5 s, once a process)."""
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
    if threads is not None and threads <= QUIET_THREADS:
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx



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


_counter = None  # photos done, shared with the workers for progress lines


def _init_worker(counter):
    global _counter
    _counter = counter


def write_shard(task):
    """Writes one shard atomically; returns its manifest entry. Runs in a worker."""
    import tensorflow as tf  # noqa: the parent may not have loaded it yet

    out_dir, name, blocks, identity_names, jpeg_quality = task
    final = os.path.join(out_dir, name)
    tmp = fileio.temp_path(final)
    try:
        return _write_shard(tf, out_dir, name, final, tmp, blocks, identity_names, jpeg_quality)
    except Exception as e:
        if fileio.exists(tmp):
            fileio.remove(tmp)
        if errors.is_disk_full(e):  # a plain OSError crosses the worker pool intact
            raise OSError(errno.ENOSPC, "No space left on device", tmp) from None
        raise


def _write_shard(tf, out_dir, name, final, tmp, blocks, identity_names, jpeg_quality):
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
    fileio.fsync_file(tmp)
    entry = {"file": name, "records": sum(c for _, c in written), "bytes": fileio.getsize(tmp),
             "sha256": records.sha256(tmp), "identities": written, "skipped": skipped}
    fileio.replace(tmp, final)
    fileio.write_json(os.path.join(out_dir, PROGRESS_DIR, name + ".json"), entry, fsync=True)
    return entry


def fingerprint(plan, config):
    """sha256 of the flags and of every listed photo (split, name, identity, size, mtime)."""
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
    if overwrite and fileio.isdir(out_dir):
        remove_own_files(out_dir)
    fileio.makedirs(progress)
    fp_path = os.path.join(progress, "fingerprint")
    existing = [n for n in fileio.listdir(out_dir) if n != PROGRESS_DIR and n not in BESIDE]
    if fileio.exists(fp_path):
        with fileio.open_file(fp_path) as f:
            if f.read().strip() != fingerprint:
                raise DataError("%s holds records from other inputs or settings; overwrite it "
                                "to start over" % out_dir)
    elif existing:
        foreign = [n for n in existing if not _OWN_FILE.match(n)]
        raise DataError("%s is not empty and holds no unfinished run of make_records (%s); %s"
                        % (out_dir, ", ".join(sorted(foreign or existing)[:3]),
                           "choose another output folder" if foreign else "overwrite it to start over"))
    else:
        fileio.write_text(fp_path, fingerprint + "\n")
    done = {}
    for name in fileio.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if name.startswith(".") and name.endswith(".tmp"):
            fileio.remove(path)  # left by a killed run
            continue
        side = os.path.join(progress, name + ".json")
        if name.endswith(".tfrecord") and fileio.exists(side):
            entry = records.read_json(side, "progress file")
            if (isinstance(entry, dict) and entry.get("bytes") == fileio.getsize(path)
                    and entry.get("sha256") == records.sha256(path)):
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


def run_config(num_shards, seed, jpeg_quality, source):
    return {"schema_version": records.SCHEMA_VERSION, "num_shards": num_shards, "seed": seed,
            "jpeg_quality": jpeg_quality, "source": source}


def convert(listing, out_dir, num_shards=16, num_workers=2, seed=0, overwrite=False,
            strict=False, jpeg_quality=95, flags_used=None, runner="local", beam_options=None):
    """Writes the shards, labels.txt and manifest.json; returns the manifest.

    runner: "local" (num_workers processes on this machine) or "beam" (an Apache
    Beam pipeline, beam_writer; beam_options are its pipeline options). Both write
    the same shards from the same plan."""
    if not listing.photos:
        raise DataError("%s: no photos found" % listing.source.get("data_dir", out_dir))
    if len(listing.identity_names) < 2:
        raise DataError("only one identity found: pairs of different people are impossible")
    plan = plan_shards(listing, num_shards, seed)
    config = run_config(num_shards, seed, jpeg_quality, listing.source)
    fp = fingerprint(plan, config)
    fileio.makedirs(out_dir)
    done = _prepare_output(out_dir, fp, overwrite)
    tasks = []
    for split, shards in plan.items():
        for k, blocks in enumerate(shards):
            name = records.shard_name(split, k, len(shards))
            if name not in done:
                tasks.append((out_dir, name, blocks, listing.identity_names, jpeg_quality))
    total = sum(len(ph) for t in tasks for _, ph in t[2])
    logging.info("%s: %d photos in %d shards to write (%d shards complete from an earlier run), %s",
                 out_dir, total, len(tasks), len(done),
                 "Apache Beam (%s)" % (beam_options or "DirectRunner") if runner == "beam"
                 else "%d workers" % num_workers)
    if runner == "beam":
        from siamese_graph.data import beam_writer

        start = time.time()
        beam_writer.write_shards(tasks, write_shard, beam_options)
        elapsed = time.time() - start
        results = []
        for t in tasks:  # each shard's entry, written beside it by write_shard
            entry = records.read_json(os.path.join(out_dir, PROGRESS_DIR, t[1] + ".json"), "progress file")
            results.append(entry)
        return _finish(plan, done, results, listing, config, flags_used, strict, out_dir, fp, total, elapsed,
                       runner)
    ctx = worker_context()
    counter = ctx.Value("q", 0)
    progress = _Progress(counter, total)
    progress.start()
    start = time.time()
    try:
        num_workers = worker_count(num_workers, len(tasks), "make_records")
        if num_workers <= 1:
            _init_worker(counter)
            results = [write_shard(t) for t in tasks]
        else:
            with ctx.Pool(num_workers, initializer=_init_worker, initargs=(counter,)) as pool:
                results = list(pool.imap_unordered(write_shard, tasks))
    finally:
        progress.stop.set()
        _init_worker(None)
    elapsed = time.time() - start
    return _finish(plan, done, results, listing, config, flags_used, strict, out_dir, fp, total, elapsed, runner)


def _finish(plan, done, results, listing, config, flags_used, strict, out_dir, fp, total, elapsed, runner):
    """labels.txt and manifest.json from the shards' entries; returns the manifest."""
    manifest_path = os.path.join(out_dir, records.MANIFEST)
    for entry in results:
        done[entry["file"]] = entry
    manifest = _manifest(plan, done, listing, config, flags_used or {})
    manifest["runner"] = runner
    skipped = manifest["skipped"]
    if strict and skipped:
        raise DataError("%s: %s (%d photos skipped; strict)" % (skipped[0][0], skipped[0][1], len(skipped)))
    written = {i for s in manifest["splits"].values() for sh in s["shards"] for i, _ in sh["identities"]}
    if len(written) < 2:
        raise DataError("%d identities left after skipping %d bad photos: pairs of different people "
                        "are impossible" % (len(written), len(skipped)))
    fileio.write_text(os.path.join(out_dir, records.LABELS),
                      "".join("%d:%s\n" % (i, n) for i, n in enumerate(listing.identity_names)), fsync=True)
    manifest["fingerprint"] = fp
    fileio.write_json(manifest_path, manifest, fsync=True)
    fileio.rmtree(os.path.join(out_dir, PROGRESS_DIR))
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

    record_set = records.RecordSet(records_dir)
    checked = 0
    for split in record_set.splits.values():
        for shard, path in zip(split.shards, split.all_files):
            if records.sha256(path) != shard["sha256"]:
                raise DataError("%s: checksum differs from the manifest" % path)
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
                raise DataError("%s: unreadable record or image (%s)" % (path, e.message.splitlines()[0]))
            if got != expected:
                raise DataError("%s: %d records with identities not as the manifest lists (%d expected)"
                                % (path, len(got), len(expected)))
            checked += len(got)
    return checked


def remove_own_files(out_dir):
    """Removes what make_records wrote in out_dir (shards, manifest, labels, progress, temp files).

    Raises DataError, removing nothing, if out_dir holds anything else."""
    names = [n for n in fileio.listdir(out_dir) if n not in BESIDE]
    foreign = sorted(n for n in names if not _OWN_FILE.match(n))
    if foreign:
        raise DataError("%s holds files make_records did not write (%s%s); overwriting removes only "
                        "its own records: choose another output folder"
                        % (out_dir, ", ".join(foreign[:3]), ", ..." if len(foreign) > 3 else ""))
    for name in names:
        path = os.path.join(out_dir, name)
        fileio.rmtree(path) if fileio.isdir(path) else fileio.remove(path)
