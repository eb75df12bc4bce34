"""Aligning a whole photo folder (FaceNet's align_dataset_mtcnn): a source listing
(datasets.celeba or datasets.folder) in, the same layout with aligned 178x218
faces out, ready for make_records.

  CelebA's in-the-wild layout (img_celeba/ + identity and partition files)
      -> OUT/img_align_celeba/NNNNNN.jpg + the two files, listing the aligned photos
  folder-per-person (with or without train/val/test folders) -> the same tree

Every photo's outcome goes into OUT/align_manifest.json: aligned (the kept face's
box, 5 points and confidence, how many faces were found and why that one was
kept), no_face (skipped) or unusable (the reason). Photos are written under a
temporary name and renamed; each outcome is appended to a hidden journal as it
arrives, so a killed run resumes where it stopped, and a finished run is
complete already when run again with the same inputs and settings.
"""
import collections
import functools
import io
import json
import multiprocessing
import os
import shutil
import time

from absl import logging
from PIL import Image

from siamese_graph import fileio
from siamese_graph.data import beam_writer, photos
from siamese_graph.data.datasets import celeba, folder
from siamese_graph.errors import DataError
from siamese_graph.faces import align, align_graph
from siamese_graph.progress import Progress, worker_count

MANIFEST = "align_manifest.json"
JOURNAL = ".align-journal.jsonl"
CONFIG = ".align-config.json"
BEAM_RESULTS = ".align-beam"  # --runner=beam: each photo's manifest entry, until the run ends


def read_source(data_dir, layout, allow_missing=False, val_fraction=0.0, test_fraction=0.1, seed=0):
    """The Listing of a source to align: for CelebA's layout its in-the-wild img_celeba/
    when present, else img_align_celeba/; else datasets.folder's. Raises DataError
    (celeba.MissingPhotos when listed photos are missing)."""
    if layout == "celeba":
        wild = os.path.isdir(os.path.join(data_dir, celeba.WILD_IMAGES))
        return celeba.read(data_dir, allow_missing=allow_missing, images=celeba.WILD_IMAGES if wild else celeba.IMAGES)
    return folder.read(data_dir, val_fraction, test_fraction, seed)


def output_names(photos, layout):
    """{relname: the aligned photo's path relative to the output folder} (always a .jpg):
    the photo's name with .jpg for its extension, or, where two photos of a folder
    differ only in extension (x.jpg, x.png), the whole name plus .jpg for all but
    the one already named so (x.jpg, x.png.jpg): no photo overwrites another."""
    plain = {p.relname: os.path.splitext(p.relname)[0] + ".jpg" for p in photos}
    taken = collections.Counter(plain.values())
    names = {}
    for p in photos:
        name = plain[p.relname]
        if taken[name] > 1 and p.relname != name:
            name = p.relname + ".jpg"
        names[p.relname] = os.path.join(celeba.IMAGES, name) if layout == "celeba" else name
    return names


_ALIGNER = None


def _init_worker(min_confidence, max_side, scale=1.0):
    global _ALIGNER
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _ALIGNER = align_graph.Aligner(min_confidence=min_confidence, max_side=max_side, scale=scale)


def align_one(task):
    """(source path, output path, relname, output relname, jpeg quality) -> the manifest
    entry of one photo."""
    src, dst, relname, output, quality = task
    entry = {"photo": relname}
    try:
        _, im, _ = photos.read(src)
        rgb = photos.to_rgb(im)
    except photos.PhotoError as e:
        entry.update(status="unusable", reason=str(e))
        return entry
    aligned, faces = _ALIGNER(rgb)
    if not faces:
        entry.update(status="no_face", faces=0)
        return entry
    buf = io.BytesIO()
    Image.fromarray(aligned, "RGB").save(buf, format="JPEG", quality=quality)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with fileio.atomic_write(dst, "wb") as f:
        f.write(buf.getvalue())
    entry.update(status="aligned", output=output, faces=len(faces), why=align.kept_reason(len(faces)), **align.describe(faces[0]))
    return entry


def _read_journal(path):
    """{relname: entry} of the complete lines of a journal (a killed run may leave half a line)."""
    done = {}
    if not os.path.isfile(path):
        return done
    with open(path) as f:
        for line in f:
            try:
                e = json.loads(line)
                done[e["photo"]] = e
            except (ValueError, KeyError, TypeError):
                continue
    return done


def align_listing(listing, out_dir, layout, num_workers=2, min_confidence=align.DEFAULT_MIN_CONFIDENCE,
                  max_side=align.DEFAULT_MAX_SIDE, jpeg_quality=95, overwrite=False, runner="local",
                  beam_options=None, scale=1.0):
    """Aligns every photo of a listing into out_dir; returns the manifest.

    Args:
      listing: datasets.celeba.read or datasets.folder.read's Listing.
      out_dir: the output folder (created; must not be inside the source).
      layout: "celeba" or "folder" (how out_dir is laid out).
      num_workers: detector processes (each loads MTCNN once).
      min_confidence, max_side: align.Detector's.
      jpeg_quality: of the aligned photos.
      overwrite: start again even where a journal or manifest of other settings is.
      runner: "local" (num_workers processes) or "beam" (an Apache Beam pipeline with
        beam_options: beam_writer.run_tasks; the same outputs, byte for byte).
      scale: the aligned layout's scale (align_graph.aligned_size: 1 is 178x218,
        0.5 is 89x109, for photos of half CelebA's resolution).
    Raises DataError when out_dir holds a run with other inputs or settings.
    """
    if not listing.photos:
        raise DataError("%s: no photos found" % listing.source.get("data_dir", out_dir))
    os.makedirs(out_dir, exist_ok=True)
    template = align.load_template()
    config = {"source": listing.source, "layout": layout, "min_confidence": min_confidence, "max_side": max_side,
              "jpeg_quality": jpeg_quality, "template": template["points"].tolist(),
              "photos": len(listing.photos)}
    if scale != 1.0:  # (runs at full scale keep the config they had, and resume)
        config["aligned_size"] = list(align_graph.aligned_size(scale))
    config_path, journal_path = os.path.join(out_dir, CONFIG), os.path.join(out_dir, JOURNAL)
    foreign = sorted(n for n in os.listdir(out_dir) if n != fileio.LOCK_FILE) if not os.path.isfile(config_path) else []
    if foreign:  # a folder siamese-align did not write: never write into it, --overwrite or not
        raise DataError("%s holds files siamese-align did not write (%s%s): choose another output folder"
                        % (out_dir, ", ".join(foreign[:3]), ", ..." if len(foreign) > 3 else ""))
    if os.path.isfile(config_path) and not overwrite:
        with open(config_path) as f:
            if json.load(f) != json.loads(json.dumps(config)):
                raise DataError("%s: aligned from other inputs or settings; overwrite it or use another folder" % out_dir)
    elif overwrite and os.path.exists(journal_path):
        os.remove(journal_path)
    fileio.write_json(config_path, config)
    done = _read_journal(journal_path)
    tasks, names = [], output_names(listing.photos, layout)
    for p in listing.photos:
        dst = os.path.join(out_dir, names[p.relname])
        prior = done.get(p.relname)
        if prior and (prior["status"] != "aligned" or os.path.isfile(dst)):
            continue
        done.pop(p.relname, None)
        tasks.append((p.path, dst, p.relname, names[p.relname], jpeg_quality))
    num_workers = worker_count(num_workers, len(tasks), "siamese-align")
    logging.info("%s: %d photos to align (%d done by an earlier run), %d workers",
                 out_dir, len(tasks), len(done), num_workers)
    start, progress = time.time(), Progress(len(tasks), "photos aligned")
    with open(journal_path, "a") as journal:
        if tasks and runner == "beam":
            results_dir = os.path.join(out_dir, BEAM_RESULTS)
            shutil.rmtree(results_dir, ignore_errors=True)
            for k, entry in enumerate(beam_writer.run_tasks(
                    tasks, align_one, results_dir, beam_options,
                    setup=functools.partial(_init_worker, min_confidence, max_side, scale)), 1):
                journal.write(json.dumps(entry) + "\n")
                done[entry["photo"]] = entry
                progress.update(k)
            shutil.rmtree(results_dir)
        elif tasks:
            if num_workers <= 1:
                _init_worker(min_confidence, max_side, scale)
                results = map(align_one, tasks)
                pool = None
            else:
                pool = multiprocessing.get_context("spawn").Pool(
                    num_workers, initializer=_init_worker, initargs=(min_confidence, max_side, scale))
                results = pool.imap_unordered(align_one, tasks, chunksize=2)
            try:
                for k, entry in enumerate(results, 1):
                    journal.write(json.dumps(entry) + "\n")
                    journal.flush()
                    done[entry["photo"]] = entry
                    progress.update(k)
            finally:
                if pool is not None:
                    pool.terminate()
                    pool.join()
    elapsed = time.time() - start
    return _finish(listing, out_dir, layout, done, config, len(tasks), elapsed, names)


def _finish(listing, out_dir, layout, done, config, aligned_now, elapsed, names):
    entries = [done[p.relname] for p in listing.photos]
    counts = {s: sum(e["status"] == s for e in entries) for s in ("aligned", "no_face", "unusable")}
    counts["several_faces"] = sum(e.get("faces", 0) > 1 for e in entries)
    if layout == "celeba":
        aligned = [(p, e) for p, e in zip(listing.photos, entries) if e["status"] == "aligned"]
        ids = "".join("%s %s\n" % (os.path.basename(names[p.relname]), p.identity_name) for p, _ in aligned)
        codes = {v: k for k, v in celeba.PARTITIONS.items()}
        parts = "".join("%s %s\n" % (os.path.basename(names[p.relname]), codes[p.split]) for p, _ in aligned)
        fileio.write_text(os.path.join(out_dir, celeba.IDENTITY_FILE), ids)
        fileio.write_text(os.path.join(out_dir, celeba.PARTITION_FILE), parts)
    manifest = {"source": listing.source, "layout": layout, "settings": {k: config[k] for k in (
        "min_confidence", "max_side", "jpeg_quality", "template", "aligned_size") if k in config}, "counts": counts,
        "photos_total": len(entries), "aligned_this_run": aligned_now,
        "seconds_this_run": round(elapsed, 1), "photos": entries}
    fileio.write_json(os.path.join(out_dir, MANIFEST), manifest, sort_keys=False)
    return manifest
