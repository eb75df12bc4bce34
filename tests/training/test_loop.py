"""The session loop's set-up (training/loop.py): precision, the session config."""

import pytest
import tensorflow as tf


def fixed_inputs():
    """build_training_graph's inputs= in the current graph: the same 8 random 16x16 pairs
    (4 same, 4 different) on every call."""
    import numpy as np

    rng = np.random.RandomState(0)
    batch = {"image_a": rng.normal(size=(8, 16, 16, 3)).astype("float32"),
             "image_b": rng.normal(size=(8, 16, 16, 3)).astype("float32"),
             "label": np.array([0, 1] * 4, np.int32), "identity_a": np.arange(8),
             "identity_b": np.array([0, 9, 2, 11, 4, 13, 6, 15])}
    return {k: tf.constant(v) for k, v in batch.items()}


def test_bfloat16_session_config_keeps_a_cluster_workers_settings(tmp_path):
    from siamese_graph.training import loop, train_config

    v1 = tf.compat.v1
    base = v1.ConfigProto(device_filters=["/job:ps"], operation_timeout_in_ms=5000)
    assert loop.session_config(train_config.TrainConfig(mixed_precision="none"), base) is base
    assert loop.session_config(train_config.TrainConfig(mixed_precision="none")) is None
    out = loop.session_config(train_config.TrainConfig(mixed_precision="bfloat16"), base)
    assert list(out.device_filters) == ["/job:ps"] and out.operation_timeout_in_ms == 5000
    assert out.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 1  # ON
    assert not base.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16
    (tmp_path / "yes").write_text("flags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    (tmp_path / "no").write_text("flags\t\t: fpu avx2 avx512f\n")
    assert loop.native_bf16(str(tmp_path / "yes")) is True
    assert loop.native_bf16(str(tmp_path / "no")) is False
    assert loop.native_bf16(str(tmp_path / "missing")) is None
    # the default, auto: bfloat16 only where the CPU has bfloat16 arithmetic
    assert train_config.TrainConfig().mixed_precision == "auto"
    assert loop.resolved_precision("auto", str(tmp_path / "yes")) == "bfloat16"
    assert loop.resolved_precision("auto", str(tmp_path / "no")) == "none"
    assert loop.resolved_precision("auto", str(tmp_path / "missing")) == "none"
    assert loop.resolved_precision("none", str(tmp_path / "yes")) == "none"
    assert loop.resolved_precision("bfloat16", str(tmp_path / "no")) == "bfloat16"


def test_bfloat16_step_runs_the_convolutions_in_bfloat16_and_keeps_float32_weights():
    """The rewrite casts the step's convolutions to bfloat16 (checked where the CPU has
    bfloat16 arithmetic), not the matmuls of the embedding and the head; the variables stay float32 and the first loss is the float32
    graph's to bfloat16's precision."""
    import numpy as np

    from siamese_graph.training import graphs, loop, train_config

    v1 = tf.compat.v1
    out = {}
    for precision in ("none", "bfloat16"):
        config = train_config.TrainConfig(image_size=16, batch_size=8, loss_pairs="active", mixed_precision=precision)
        with tf.Graph().as_default():
            graph = graphs.build_training_graph([], config, inputs=fixed_inputs())
            assert {v.dtype.base_dtype for v in v1.global_variables()} <= {tf.float32, tf.int64}
            meta = v1.RunMetadata()
            with v1.Session(config=loop.session_config(config)) as sess:
                sess.run(v1.global_variables_initializer())
                first = sess.run(graph.total_loss, options=v1.RunOptions(output_partition_graphs=True),
                                 run_metadata=meta)
                for _ in range(5):
                    _, loss = sess.run([graph.train_op, graph.total_loss])
            bf16 = tf.bfloat16.as_datatype_enum
            bf16_ops = [n.op for g in meta.partition_graphs for n in g.node if n.attr["T"].type == bf16]
            out[precision] = first, loss, bf16_ops
    assert out["none"][2] == []
    if loop.native_bf16():
        assert any("Conv2D" in op for op in out["bfloat16"][2]), "no convolution was rewritten to bfloat16"
        # the embedding and the head stay float32
        assert not any("MatMul" in op for op in out["bfloat16"][2]), out["bfloat16"][2]
    assert np.isfinite(out["bfloat16"][1])
    assert out["bfloat16"][0] == pytest.approx(out["none"][0], rel=0.03)
