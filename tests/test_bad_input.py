"""Faults and bad inputs (issue 15): nothing lost, nothing silently wrong, one line each."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from siamese_graph.data import photos, records
from siamese_graph.data.datasets import celeba, folder
from siamese_graph.errors import DataError
from tests.conftest import SYNTHETIC, cli, face, make_celeba, make_people


def one_line_error(r, needle):
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last, last


# --- photos: every Pillow mode converted with its real range -----------------------------

def _saved(tmp_path, im, name):
    path = str(tmp_path / name)
    im.save(path)
    return path


def test_sixteen_bit_and_other_modes_keep_their_pixels(tmp_path):
    gray = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (24, 1))
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)  # I;16, the same picture in 16 bits
    assert sixteen.mode == "I;16"
    rgb = np.asarray(face(3, 1, size=(32, 24)))
    cases = [
        (sixteen, "g16.png", np.repeat(gray[:, :, None], 3, 2)),
        (Image.fromarray(gray.astype(np.int32) * 257, "I"), "g32.tif", np.repeat(gray[:, :, None], 3, 2)),
        (Image.fromarray(gray, "L"), "g8.png", np.repeat(gray[:, :, None], 3, 2)),
        (Image.fromarray(rgb).convert("RGBA"), "rgba.png", rgb),
        (Image.fromarray(rgb).convert("CMYK"), "cmyk.tif", rgb),
        (Image.fromarray(gray, "L").convert("LA"), "la.png", np.repeat(gray[:, :, None], 3, 2)),
    ]
    for im, name, want in cases:
        _, decoded, _ = photos.read(_saved(tmp_path, im, name))
        got = photos.to_rgb(decoded)
        assert got.dtype == np.uint8 and got.shape == want.shape, name
        assert np.abs(got.astype(int) - want).max() <= 1, (name, decoded.mode)
    # Pillow's own convert("RGB") clips 16-bit values: what the old code stored
    assert np.asarray(sixteen.convert("RGB")).mean() > 200 > gray.mean() + 60
    with pytest.raises(photos.PhotoError, match="mode F"):
        photos.to_rgb(Image.fromarray(gray.astype(np.float32), "F"))


def test_sixteen_bit_photo_is_stored_right_by_make_records(tmp_path):
    src = tmp_path / "src"
    for person in ("a", "b"):
        (src / person).mkdir(parents=True)
        for k in range(2):
            g = np.full((40, 40), 40 + 60 * k, np.uint16) * 257
            Image.fromarray(g).save(src / person / ("%d.png" % k))
    r = cli("siamese_graph.make_records", "--dataset=folder", "--data_dir=%s" % src,
                "--output_dir=%s" % (tmp_path / "out"), "--test_fraction=0", "--verify")
    assert r.returncode == 0, r.stderr[-2000:]
    import tensorflow as tf
    means = sorted(float(tf.io.decode_jpeg(records.parse_example(s)["image/encoded"]).numpy().mean())
                   for s in tf.data.TFRecordDataset(records.RecordSet(str(tmp_path / "out")).split("train").all_files))
    assert means == pytest.approx([40, 40, 100, 100], abs=2)


# --- make_records: never touches what it did not write; notices a changed source ---------

def test_overwrite_never_deletes_the_source_or_foreign_files(tmp_path):
    data = tmp_path / "celeba"
    make_celeba(data, [2, 2])
    (tmp_path / "notes.txt").write_text("mine")
    before = sorted(os.listdir(data / "img_align_celeba"))
    for out in (tmp_path, data, data / "records"):  # holds the data, is it, is inside it
        r = cli("siamese_graph.make_records", "--data_dir=%s" % data, "--output_dir=%s" % out, "--overwrite")
        one_line_error(r, "must be outside --data_dir")
    assert sorted(os.listdir(data / "img_align_celeba")) == before and (tmp_path / "notes.txt").exists()
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    r = cli("siamese_graph.make_records", "--data_dir=%s" % data, "--output_dir=%s" % out, "--overwrite")
    one_line_error(r, "holds files make_records did not write (keep.txt)")
    assert (out / "keep.txt").read_text() == "x"


def test_changed_source_is_not_complete_already(tmp_path):
    src = make_people(tmp_path / "people", 0, 3, 2, "jpg")
    args = ["--dataset=folder", "--data_dir=%s" % src, "--output_dir=%s" % (tmp_path / "out"), "--test_fraction=0"]
    assert cli("siamese_graph.make_records", *args).returncode == 0
    again = cli("siamese_graph.make_records", *args)
    assert again.returncode == 0 and "complete already" in again.stderr
    (src / "p3").mkdir()
    face(3, 0).save(src / "p3" / "0.jpg")
    one_line_error(cli("siamese_graph.make_records", *args), "the photos or flags changed")


@pytest.mark.parametrize("flag", ["--jpeg_quality=-5", "--jpeg_quality=500"])
def test_jpeg_quality_range(tmp_path, flag):
    make_celeba(tmp_path / "src", [2, 2])
    r = cli("siamese_graph.make_records", "--data_dir=%s" % (tmp_path / "src"),
                "--output_dir=%s" % (tmp_path / "out"), flag)
    one_line_error(r, "must be in 1..100")
    assert not (tmp_path / "out").exists()


def test_output_dir_that_is_a_file(tmp_path):
    make_celeba(tmp_path / "src", [2, 2])
    (tmp_path / "f").write_text("")
    r = cli("siamese_graph.make_records", "--data_dir=%s" % (tmp_path / "src"), "--output_dir=%s" % (tmp_path / "f"))
    one_line_error(r, "is a file, not a folder")


def test_bad_first_line_is_an_error_not_a_header(tmp_path):
    make_celeba(tmp_path, [2, 2])
    lines = (tmp_path / "identity_CelebA.txt").read_text().splitlines()
    (tmp_path / "identity_CelebA.txt").write_text("\n".join(["000001.jpg x7201"] + lines[1:]) + "\n")
    with pytest.raises(DataError, match=r"identity_CelebA.txt:1: bad identity 'x7201'"):
        celeba.read(str(tmp_path))
    for header in ("4", "image_id identity"):  # CelebA's real header shapes are still skipped
        (tmp_path / "identity_CelebA.txt").write_text("\n".join([header] + lines) + "\n")
        assert len(celeba.read(str(tmp_path)).photos) == 4


def test_utf16_annotation_file_is_named(tmp_path):
    make_celeba(tmp_path, [2, 2])
    path = tmp_path / "list_eval_partition.txt"
    path.write_bytes(path.read_text().encode("utf-16"))
    with pytest.raises(DataError, match="list_eval_partition.txt: not UTF-8 text"):
        celeba.read(str(tmp_path))


def test_person_folder_names_with_tabs_or_newlines_are_refused(tmp_path):
    for name in ("ok", "bad\tname", "bad\nname"):
        (tmp_path / name).mkdir()
        face(1, 0).save(tmp_path / name / "0.jpg")
    with pytest.raises(DataError, match="control character"):
        folder.walk(str(tmp_path))
    with pytest.raises(DataError, match="control character"):
        folder.read(str(tmp_path))


@pytest.mark.parametrize("manifest,needle", [
    ([], "expected an object"),
    ({"splits": {}}, "missing 'num_identities'"),
    ({"num_identities": 2, "splits": {"train": {"shards": [{"file": "x"}]}}}, "missing 'sha256'"),
    ({"num_identities": 2, "splits": {"train": {"shards": [
        {"file": "x", "sha256": "", "records": 1, "bytes": 1, "identities": [[5, 1]]}]}}}, "identity < 2"),
])
def test_manifest_of_the_wrong_shape(tmp_path, manifest, needle):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="manifest.json: not a valid manifest.*" + needle.replace("[", r"\[")):
        records.RecordSet(str(tmp_path))


# --- train: nothing written when refused --------------------------------------------------

def test_refused_train_writes_nothing(synthetic_records, tmp_path):
    new = tmp_path / "new"
    for flag in ("--batch_size=-8", "--batch_size=100000000", "--image_size=100000", "--margin=0"):
        r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0],
                    "--train_dir=%s" % new, flag)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert not new.exists(), flag
    existing = tmp_path / "old"
    existing.mkdir()
    (existing / "flags.txt").write_text("--batch_size=8\n")
    r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % existing,
                "--batch_size=-8")
    one_line_error(r, "--batch_size=-8: must be even")
    assert (existing / "flags.txt").read_text() == "--batch_size=8\n" and os.listdir(existing) == ["flags.txt"]


def test_cache_above_its_limit_is_refused(synthetic_records, tmp_path):
    r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % (tmp_path / "r"),
                "--cache", "--augment", "--image_size=32", "--cache_limit_mb=0")
    one_line_error(r, "--cache: the 38 training photos take 0 MiB decoded, more than --cache_limit_mb=0")
    assert not (tmp_path / "r").exists()


def test_cache_names_records_that_disagree_with_their_manifest(synthetic_records, tmp_path):
    d = tmp_path / "rec"
    shutil.copytree(synthetic_records[0], d)
    manifest = json.loads((d / "manifest.json").read_text())
    blocks = manifest["splits"]["train"]["shards"][0]["identities"]
    blocks[0][0], blocks[1][0] = blocks[1][0], blocks[0][0]  # two identities' blocks swapped
    (d / "manifest.json").write_text(json.dumps(manifest))
    r = cli("siamese_graph.inspect_pairs", "--records_dir=%s" % d, "--cache", "--num_pairs=100")
    one_line_error(r, "the identities in the records disagree with the identity blocks in the manifest")


def test_train_dir_that_is_a_file(synthetic_records, tmp_path):
    (tmp_path / "f").write_text("")
    r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % (tmp_path / "f"))
    one_line_error(r, "is a file, not a folder")


def test_inspect_pairs_checks_the_grid_folder_first(synthetic_records, tmp_path):
    r = cli("siamese_graph.inspect_pairs", "--records_dir=%s" % synthetic_records[0],
                "--save_grid=%s" % (tmp_path / "nope" / "g.png"))
    one_line_error(r, "does not exist")


def test_corrupt_test_shard_is_named(synthetic_records, tmp_path):
    d = str(tmp_path / "rec")
    shutil.copytree(synthetic_records[0], d)
    shard = records.RecordSet(d).split("test").all_files[0]
    data = bytearray(open(shard, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(shard, "wb").write(bytes(data))
    assert records.RecordSet(d).find_corrupt_shard() == shard
    r = cli("siamese_graph.inspect_pairs", "--records_dir=%s" % d, "--split=test", "--num_pairs=400")
    one_line_error(r, "%s: corrupt shard" % shard)


def test_memory_bound_against_this_machine(synthetic_records, tmp_path):
    r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0],
                "--train_dir=%s" % (tmp_path / "run"), "--batch_size=4096", "--image_size=512")
    one_line_error(r, "GiB of activations, more than this machine's")
    assert not (tmp_path / "run").exists()


# --- checkpoints: damaged ones named, earlier ones usable ----------------------------------

TRAIN = ["--image_size=32", "--batch_size=8", "--save_checkpoint_steps=2", "--validate_every_n_steps=0",
         "--shuffle_buffer=64", "--log_every_n_steps=2"]


@pytest.fixture(scope="module")
def two_checkpoints(synthetic_records, tmp_path_factory):
    """A train_dir with model.ckpt-2 and model.ckpt-4, and two photos to score."""
    base = tmp_path_factory.mktemp("ckpts")
    run = base / "run"
    r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % run,
                "--max_steps=4", *TRAIN)
    assert r.returncode == 0, r.stderr[-3000:]
    photos = []
    for i in (1, 2):
        photos.append(str(base / ("%d.png" % i)))
        face(i, 0).save(photos[-1])
    return run, photos


def _damaged_copy(src, dst, how):
    shutil.copytree(src, dst)
    data_file = next(str(dst / n) for n in os.listdir(dst) if n.startswith("model.ckpt-4.data"))
    data = bytearray(open(data_file, "rb").read())
    if how == "truncated":
        data = data[:len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x10
    open(data_file, "wb").write(bytes(data))
    return str(dst)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "bit-flipped"])
def test_damaged_checkpoint_is_named_and_an_earlier_one_restores(two_checkpoints, tmp_path, how):
    run, photos = two_checkpoints
    d = _damaged_copy(run, tmp_path / "run", how)
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % d, *photos)
    one_line_error(r, "model.ckpt-4: damaged checkpoint")
    assert "--checkpoint_path=model.ckpt-2" in r.stderr
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % d, "--checkpoint_path=model.ckpt-2", *photos)
    assert r.returncode == 0 and r.stdout.startswith("distance "), r.stderr[-2000:]
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % d, "--checkpoint_path=model.ckpt-3", *photos)
    one_line_error(r, "model.ckpt-3: no such checkpoint")


@pytest.mark.slow
def test_train_resume_names_a_damaged_checkpoint_then_resumes_from_an_earlier_one(
        two_checkpoints, synthetic_records, tmp_path):
    import tensorflow as tf

    run, _ = two_checkpoints
    d = _damaged_copy(run, tmp_path / "run", "bit-flipped")
    args = ["--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % d, "--max_steps=6", *TRAIN]
    r = cli("siamese_graph.train", *args)
    one_line_error(r, "model.ckpt-4: damaged checkpoint")
    assert "corrupt shard" not in r.stderr and "--checkpoint_path=model.ckpt-2" in r.stderr
    r = cli("siamese_graph.train", *args, "--checkpoint_path=model.ckpt-2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stderr and tf.train.latest_checkpoint(d).endswith("model.ckpt-6")
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(d))
    assert reader.get_tensor("global_step") == 6


# --- a full disk: one line from every command, nothing half-written -------------------------


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(bytes): a tmpfs of that size, or skip where this process may not
    mount one (it needs root); unmounted after the test."""
    import subprocess

    mounts = []

    def mount(size):
        mnt = tmp_path / ("disk%d" % len(mounts))
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs", str(mnt)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip("cannot mount a small tmpfs here (%s): the full-disk tests need root"
                        % r.stderr.strip())
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        subprocess.run(["umount", "-l", str(mnt)])


def test_make_records_on_a_full_disk(tmp_path, small_disk):
    src = make_people(tmp_path / "src", 0, 6, 8)
    out = small_disk(64 * 1024) / "records"
    r = cli("siamese_graph.make_records", "--dataset=folder", "--data_dir=%s" % src,
                "--output_dir=%s" % out, "--num_shards=2", "--num_workers=1", "--jpeg_quality=100")
    one_line_error(r, "no space left on device")
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")], os.listdir(out)
    assert not os.path.exists(out / records.MANIFEST)


@pytest.mark.slow
def test_train_on_a_full_disk_keeps_the_last_checkpoint(two_checkpoints, synthetic_records, small_disk):
    import tensorflow as tf

    run, photos = two_checkpoints
    used = sum(os.path.getsize(os.path.join(run, n)) for n in os.listdir(run))
    ckpt = sum(os.path.getsize(os.path.join(run, n)) for n in os.listdir(run) if n.startswith("model.ckpt-4"))
    d = small_disk(used + ckpt // 2) / "run"  # room for the events, not for one more checkpoint
    shutil.copytree(run, d)
    r = cli("siamese_graph.train", "--records_dir=%s" % synthetic_records[0], "--train_dir=%s" % d,
                "--max_steps=10", *TRAIN)
    one_line_error(r, "no space left on device writing the checkpoint in %s" % d)
    assert not [n for n in os.listdir(d) if n.endswith("_temp")]
    assert tf.train.latest_checkpoint(str(d)).endswith("model.ckpt-4")
    r = cli("siamese_graph.score", *SYNTHETIC, "--checkpoint_dir=%s" % d, *photos)
    assert r.returncode == 0 and r.stdout.startswith("distance "), r.stderr[-2000:]


# --- read-only output locations: refused before any work ----------------------------------

RO = "/sys/siamese-graph-test"  # sysfs: no one, root included, may create files here


@pytest.mark.slow
def test_read_only_outputs_are_refused_before_the_work(two_checkpoints, synthetic_records, tmp_path,
                                                       small_disk):
    import subprocess

    run, photos = two_checkpoints
    rec = synthetic_records[0]
    people = make_people(tmp_path / "people", 0, 3, 3)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("%s %s\n" % tuple(photos))
    cases = [
        ("make_records", ["--dataset=folder", "--data_dir=%s" % people, "--output_dir=%s/rec" % RO], "--output_dir"),
        ("train", ["--records_dir=%s" % rec, "--train_dir=%s/run" % RO], "--train_dir"),
        ("evaluate", ["--checkpoint_dir=%s" % run, "--records_dir=%s" % rec, "--num_pairs=20", "--folds=2",
                      "--output_dir=%s/eval" % RO], "--output_dir"),
        ("score", ["--checkpoint_dir=%s" % run, "--pairs=%s" % pairs, "--output=%s/s.tsv" % RO], "--output"),
        ("gallery", ["--checkpoint_dir=%s" % run, "--enroll=%s" % people, "--gallery=%s/g.npz" % RO], "--gallery"),
        ("embed", ["--checkpoint_dir=%s" % run, "--folder=%s" % people, "--output_dir=%s/emb" % RO], "--output_dir"),
        ("inspect_pairs", ["--records_dir=%s" % rec, "--save_grid=%s/g.png" % RO], "--save_grid"),
    ]
    for command, args, flag in cases:
        r = cli("siamese_graph." + command, *args)
        one_line_error(r, flag + "=" + RO)
        assert "cannot write in" in r.stderr or "does not exist" in r.stderr, (command, r.stderr[-300:])
    # --calibrate writes threshold.json beside the checkpoint: checked before the report is made
    disk = small_disk(64 * 2 ** 20)
    ro_run = disk / "run"
    shutil.copytree(run, ro_run)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    out = tmp_path / "eval"
    r = cli("siamese_graph.evaluate", *SYNTHETIC, "--checkpoint_dir=%s" % ro_run, "--records_dir=%s" % rec,
                "--num_pairs=20", "--folds=2", "--output_dir=%s" % out, "--calibrate")
    one_line_error(r, "--checkpoint_dir=%s: cannot write in" % ro_run)
    assert not out.exists()
