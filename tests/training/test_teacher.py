"""Knowledge distillation's teacher (training/teacher.py) and its loss."""
import numpy as np
import pytest
import tensorflow as tf

from siamese_graph.data import pairs, records
from siamese_graph.errors import ArgumentError
from siamese_graph.model import siamese
from siamese_graph.training import graphs, teacher, train_config

v1 = tf.compat.v1
TEACHER = "convnet-celeba"  # a packaged model: always there


def split_photos(split):
    """{filename: JPEG bytes} of a split's records."""
    out = {}
    for path in split.files:
        for s in tf.data.TFRecordDataset(path).as_numpy_iterator():
            ex = tf.train.Example.FromString(s)
            f = ex.features.feature
            out[f["image/filename"].bytes_list.value[0]] = f["image/encoded"].bytes_list.value[0]
    return out


def test_the_teacher_sees_each_training_photo_as_inference_does(synthetic_records):
    from siamese_graph.inference import models, zoo

    split = pairs.pairable_split(synthetic_records[0], "train")
    keys, feats = teacher.embed_split(split, teacher.resolve(TEACHER))
    photos = split_photos(split)
    assert len(keys) == len(photos) == split.photos and (np.diff(keys) > 0).all()
    names = sorted(photos)
    with tf.Graph().as_default(), v1.Session() as sess:
        wanted = sess.run(teacher.fingerprint(tf.constant(names)))
    # the packaged model's own inference (its crop, 64 px, flip average) of the same JPEGs
    model = models.Model(zoo.path(TEACHER))
    expected = model.embed([photos[n] for n in names])
    rows = np.searchsorted(keys, wanted)
    np.testing.assert_array_equal(keys[rows], wanted)
    np.testing.assert_allclose(feats[rows], expected, atol=2e-5)
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)  # the model L2-normalizes


@pytest.mark.parametrize("cache", [False, True])
def test_every_batch_photo_gets_its_own_teacher_row(synthetic_records, cache):
    split = pairs.pairable_split(synthetic_records[0], "train")
    table = teacher.tables([split], TEACHER)[0]
    config = train_config.TrainConfig(image_size=16, batch_size=8, cache=cache, augment=True,
                                      distill_from=TEACHER)
    with tf.Graph().as_default():
        batch = graphs.build_inputs([split, split], config, teachers=[table, table])
        fp = {side: teacher.fingerprint(batch["filename_" + side]) for side in "ab"}
        with v1.Session() as sess:
            for _ in range(3):
                b, f = sess.run([batch, fp])
                for side in "ab":
                    assert b["known_" + side].all()
                    np.testing.assert_array_equal(b["teacher_" + side], table[1][np.searchsorted(table[0], f[side])])
                # a photo's row is its own: the same photo gets the same row, two photos of
                # the batch with other names get other rows
                names = np.concatenate([b["filename_a"], b["filename_b"]])
                rows = np.concatenate([b["teacher_a"], b["teacher_b"]])
                for i in range(len(names)):
                    for j in range(len(names)):
                        assert (names[i] == names[j]) == np.array_equal(rows[i], rows[j])


def test_a_photo_the_table_lacks_gets_no_row():
    keys = np.array([5, 9, 20], np.int64)
    with tf.Graph().as_default(), v1.Session() as sess:
        names = tf.constant(["a.jpg", "b.jpg"])
        fp = sess.run(teacher.fingerprint(names))
        feats = np.eye(3, dtype=np.float32)
        rows, known = sess.run(teacher.lookup(names, np.sort(np.append(keys[:2], fp[0])), feats))
    assert known.tolist() == [True, False]
    assert rows[1].tolist() == [0, 0, 0] and rows[0].sum() == 1


def test_the_distillation_loss_is_one_minus_the_cosine_over_known_rows():
    s = np.array([[1, 0], [0, 2], [3, 3], [1, 1]], np.float32)
    t = np.array([[2, 0], [0, -1], [1, 0], [7, -3]], np.float32)
    known = np.array([True, True, True, False])
    with tf.Graph().as_default(), v1.Session() as sess:
        loss = sess.run(siamese.distillation_loss(tf.constant(s), tf.constant(t), tf.constant(known)))
    assert loss == pytest.approx((0.0 + 2.0 + (1 - 2 ** -0.5)) / 3, abs=1e-6)


def test_training_with_a_teacher_brings_the_students_features_to_it(synthetic_records):
    """The distillation loss is in the training loss: with it alone (the other losses'
    weight next to nothing), a few dozen steps bring the student's directions to the
    teacher's on the training photos."""
    split = pairs.pairable_split(synthetic_records[0], "train")
    config = train_config.TrainConfig(image_size=16, batch_size=8, distill_from=TEACHER, distill_weight=1.0,
                                      convnet_embedding=128, lr_schedule="constant", learning_rate=3e-3, margin=1e-6,
                                      cache=True)
    with tf.Graph().as_default():
        graph = graphs.build_training_graph([split], config)
        distill = tf.compat.v1.get_default_graph().get_tensor_by_name("distillation_loss_value:0")
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            first = np.mean([sess.run(distill) for _ in range(5)])
            for _ in range(60):
                sess.run(graph.train_op)
            last = np.mean([sess.run(distill) for _ in range(5)])
    assert 0.5 < first and last < first / 2, (first, last)


def test_an_unknown_teacher_is_refused_naming_the_flag(tmp_path):
    with pytest.raises(ArgumentError, match="distill_from"):
        train_config.TrainConfig(distill_from=str(tmp_path / "nowhere")).check()
    with pytest.raises(ArgumentError, match="distill_weight"):
        train_config.TrainConfig(distill_from=TEACHER, distill_weight=-1.0).check()
    train_config.TrainConfig(distill_from=TEACHER).check()  # a packaged model's name


def test_a_teacher_of_another_feature_size_is_refused_naming_the_flag(synthetic_records):
    split = pairs.pairable_split(synthetic_records[0], "train")
    config = train_config.TrainConfig(image_size=16, batch_size=4, distill_from=TEACHER, convnet_embedding=64)
    with tf.Graph().as_default():
        with pytest.raises(ArgumentError, match=r"distill_from.*128 dimensions, this net's 64"):
            graphs.build_training_graph([split], config)


def test_features_of_a_record_folder_cover_every_photo_once(synthetic_records):
    split = records.RecordSet(synthetic_records[0]).split("test")
    keys, feats = teacher.embed_split(split, teacher.resolve(TEACHER))
    assert len(keys) == len(set(keys.tolist())) == split.photos and feats.shape == (split.photos, 128)
