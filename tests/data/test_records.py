"""records: the example encoding round trip, shard names, the manifest descriptor."""
import json

import numpy as np

import pytest
import tensorflow as tf

from siamese_graph.data import records
from siamese_graph.errors import DataError


def test_encode_then_parse_gives_every_feature_back():
    serialized = records.encode_example(b"\xff\xd8jpeg", 218, 178, "000001.jpg", 7, "2880")
    e = {k: v.numpy() for k, v in records.parse_example(tf.constant(serialized)).items()}
    assert e["image/encoded"] == b"\xff\xd8jpeg" and e["image/format"] == b"jpeg"
    assert (e["image/height"], e["image/width"]) == (218, 178)
    assert e["image/filename"] == b"000001.jpg" and e["image/identity"] == 7 and e["image/identity_name"] == b"2880"
    assert records.parse_identity(tf.constant(serialized)).numpy() == 7


def test_shard_names_are_tf_slims():
    assert records.shard_name("train", 3, 16) == "train-00003-of-00016.tfrecord"


def test_record_set_reads_the_manifest_of_a_written_set(synthetic_records):
    rs = records.RecordSet(synthetic_records[0])
    train, test = rs.split("train"), rs.split("test")
    assert train.photos == sum(synthetic_records[1][:12]) and test.photos == sum(synthetic_records[1][12:])
    assert all(f.endswith(".tfrecord") for f in train.all_files)
    with pytest.raises(DataError):
        rs.split("val")


def test_a_manifest_that_is_not_json_is_named(tmp_path):
    (tmp_path / records.MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match="manifest"):
        records.RecordSet(str(tmp_path))
    assert json.loads('{"a": 1}')


@pytest.mark.parametrize("name", ["../other/train-00001-of-00005.tfrecord", "/etc/passwd", "..", "sub/x.tfrecord"])
def test_a_manifest_names_only_files_of_its_own_folder(synthetic_records, tmp_path, name):
    import json
    import shutil

    d = tmp_path / "rec"
    shutil.copytree(synthetic_records[0], d)
    m = json.load(open(d / "manifest.json"))
    m["splits"]["train"]["shards"][0]["file"] = name
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"splits.train.shards\[0\].file: .* is not a file of the records folder"):
        records.RecordSet(str(d))


def test_identity_classes_are_one_a_person_across_folders(synthetic_records, tmp_path):
    import shutil

    src = synthetic_records[0]
    other = tmp_path / "other"
    shutil.copytree(src, other)
    # the second folder's identities 0..5 are the first's (same names); 6.. are new people
    lines = (other / records.LABELS).read_text().splitlines()
    (other / records.LABELS).write_text("".join(
        "%s:%s\n" % (i, name if int(i) < 6 else "someone-else-" + i)
        for i, name in (line.split(":", 1) for line in lines)))
    first, second = records.RecordSet(src).split("train"), records.RecordSet(str(other)).split("train")
    counts = first.counts  # train: 12 people of 1 to 8 photos (a test split of 3 more: none here)
    (t1, t2), n = records.identity_classes([first, second])
    np.testing.assert_array_equal(t2[:6], t1[:6])            # the same names, the same classes
    assert (t1[:6] >= 0).all()                                # 2 photos or more in the two folders together
    alone = np.flatnonzero(counts[6:] == 1) + 6               # one photo in all: no class
    assert (t1[alone] == -1).all() and (t2[alone] == -1).all()
    assert (t1[counts == 0] == -1).all()                      # the test people
    assert not set(t2[6:][t2[6:] >= 0]) & set(t1[t1 >= 0])   # new names, new classes
    assert n == 6 + 2 * ((counts[6:] >= 2).sum())
    assert sorted(set(np.concatenate([t1, t2])) - {-1}) == list(range(n))
    (t1, t2), n = records.identity_classes([first, second], min_photos=1)
    assert n == 6 + 2 * (counts[6:] >= 1).sum() and (t1[counts > 0] >= 0).all()


def test_identity_classes_name_a_missing_or_short_label_file(synthetic_records, tmp_path):
    import shutil

    other = tmp_path / "short"
    shutil.copytree(synthetic_records[0], other)
    split = records.RecordSet(str(other)).split("train")
    (other / records.LABELS).write_text("0:a\n1:b\n")
    with pytest.raises(DataError, match="labels.txt: lists 2 identities, the manifest 15"):
        records.identity_classes([split])
    (other / records.LABELS).unlink()
    with pytest.raises(DataError, match="labels.txt: no identity labels"):
        records.identity_classes([split])


def test_every_worker_numbers_the_identity_classes_alike(synthetic_records):
    # a cluster worker reads its share of the shards: its classes must be the whole split's
    split = records.RecordSet(synthetic_records[0]).split("train")
    whole = records.identity_classes([split])
    shares = [records.identity_classes([split.deal(i, 3)]) for i in range(3)]
    assert any((share.counts != split.counts).any() for share in (split.deal(i, 3) for i in range(3)))
    for (table,), n in shares:
        np.testing.assert_array_equal(table, whole[0][0])
        assert n == whole[1]
