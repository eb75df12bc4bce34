"""records: the example encoding round trip, shard names, the manifest descriptor."""
import json

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
