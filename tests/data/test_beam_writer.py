"""make_records --runner=beam: the same shards as the single-machine writer, written by Apache Beam."""
import json
import os

import pytest

from siamese_graph.data import beam_writer, records
from tests.conftest import cli, make_people, shared

pytestmark = pytest.mark.skipif(not beam_writer.available(),
                                reason="Apache Beam is not installed: pip install '.[beam]' (CI does)")


def manifest(path):
    return json.load(open(os.path.join(path, records.MANIFEST)))


def shards(m):
    return {split: [(s["file"], s["records"], s["sha256"], s["identities"]) for s in v["shards"]]
            for split, v in m["splits"].items()}


def write(data_dir, out, dataset, *extra):
    r = cli("siamese_graph.make_records", "--dataset=%s" % dataset, "--data_dir=%s" % data_dir,
                "--output_dir=%s" % out, "--num_shards=4", "--verify", *extra, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    return manifest(out)


@pytest.fixture(scope="module")
def people_with_a_bad_photo(tmp_path_factory):
    root = make_people(tmp_path_factory.mktemp("beam") / "people", 0, 10, 4)
    (root / "p3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


@pytest.mark.parametrize("options", [
    "--runner=DirectRunner",
    "--runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing"])
def test_beam_writes_the_local_writers_shards(people_with_a_bad_photo, tmp_path, options):
    local = write(people_with_a_bad_photo, tmp_path / "local", "folder", "--num_workers=2")
    beam = write(people_with_a_bad_photo, tmp_path / "beam", "folder", "--runner=beam",
                 "--beam_options=%s" % options)
    assert local["runner"] == "local" and beam["runner"] == "beam"
    assert shards(beam) == shards(local)  # byte-identical shards: the same planner and writer
    assert beam["skipped"] == local["skipped"] and len(local["skipped"]) == 1
    assert local["skipped"][0][0].endswith("broken.png")
    assert open(tmp_path / "beam" / records.LABELS).read() == open(tmp_path / "local" / records.LABELS).read()
    assert not os.path.exists(tmp_path / "beam" / ".progress")
    r = [cli("siamese_graph.inspect_pairs", "--records_dir=%s" % (tmp_path / d), "--num_pairs=400",
                 "--batch_size=8") for d in ("local", "beam")]
    assert r[0].returncode == 0 and r[1].returncode == 0, (r[0].stderr[-2000:], r[1].stderr[-2000:])
    reports = [json.loads(x.stdout) for x in r]
    # read-ahead varies run to run; the folders differ by name only
    timing = ("pairs_per_second", "records_read", "records_read_per_pair", "records_dirs")
    assert {k: v for k, v in reports[0].items() if k not in timing} == \
        {k: v for k, v in reports[1].items() if k not in timing}
    assert reports[0]["same_fraction"] == reports[1]["same_fraction"] == 0.5


def test_bad_beam_options_are_one_line(people_with_a_bad_photo, tmp_path):
    r = cli("siamese_graph.make_records", "--dataset=folder", "--data_dir=%s" % people_with_a_bad_photo,
                "--output_dir=%s" % (tmp_path / "o"), "--runner=beam", "--beam_options=--runner=NoSuchRunner")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("error: --beam_options=--runner=NoSuchRunner: ")
    assert not os.path.exists(tmp_path / "o" / records.MANIFEST)


@pytest.mark.slow
def test_beam_on_celeba_mini_matches_the_local_writer(tmp_path):
    data = shared("celeba-mini")
    local = write(data, tmp_path / "local", "celeba", "--num_workers=2")
    beam = write(data, tmp_path / "beam", "celeba", "--runner=beam",
                 "--beam_options=--runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing")
    assert shards(beam) == shards(local)
    assert beam["splits"]["train"]["photos"] == 4595 and beam["splits"]["test"]["photos"] == 520
    assert beam["skipped"] == local["skipped"]


def test_records_written_to_another_filesystem_by_url(people_with_a_bad_photo, tmp_path):
    """An output URL goes through tf.io.gfile (gs://bucket/folder on GCS; TF's ram://
    filesystem here, in this process, so Beam's in-memory DirectRunner). The shards,
    the manifest and the temp-then-rename discipline are the local writer's."""
    import tensorflow as tf

    from siamese_graph.data import pairs, record_writer
    from siamese_graph.data.datasets import folder

    listing = folder.read(str(people_with_a_bad_photo), 0.0, 0.1, 0)
    local = record_writer.convert(listing, str(tmp_path / "local"), num_shards=4, num_workers=1)
    url = "ram://bucket-%d/records" % os.getpid()
    remote = record_writer.convert(listing, url, num_shards=4, runner="beam", beam_options="--runner=DirectRunner")
    assert shards(remote) == shards(local)
    names = sorted(tf.io.gfile.listdir(url))
    assert names == sorted(os.listdir(tmp_path / "local")) and not any(n.endswith(".tmp") for n in names)
    assert record_writer.verify(url) == record_writer.verify(str(tmp_path / "local"))
    info = pairs.pairable_split(url, "train")  # the pair graph reads it where it is
    assert info.photos == local["splits"]["train"]["photos"]
    # --overwrite removes make_records' own files there and writes them again
    again = record_writer.convert(listing, url, num_shards=4, overwrite=True, runner="beam",
                                 beam_options="--runner=DirectRunner")
    assert shards(again) == shards(local) and sorted(tf.io.gfile.listdir(url)) == names
    tf.io.gfile.rmtree(url)
