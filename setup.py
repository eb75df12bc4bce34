"""siamese-graph: TF1-graph-style siamese face verification."""
import os

from setuptools import find_packages, setup

# The CPU build is the default; a GPU user sets SIAMESE_GRAPH_TF=tensorflow so
# pip does not end up with both tensorflow and tensorflow-cpu installed.
TF_PACKAGE = os.environ.get("SIAMESE_GRAPH_TF", "tensorflow-cpu")

COMMANDS = ["align", "make_records", "inspect_pairs", "train", "evaluate", "score", "gallery", "embed", "export",
            "data_service"]

setup(
    name="siamese-graph",
    version="0.1.0",
    description="Siamese face verification in the TF1 graph style: records, pairs, training, scoring.",
    packages=find_packages(include=["siamese_graph", "siamese_graph.*"]),
    python_requires=">=3.11",
    install_requires=[
        TF_PACKAGE + ">=2.16",
        "numpy",
        "absl-py",
        "pillow",
        # tensorflow-cpu does not bring TensorBoard, which the README's `tensorboard --logdir runs` needs.
        "tensorboard",
        # evaluate draws roc.png and distances.png.
        "matplotlib",
        # Face detection and 5 landmarks (siamese_graph/align): MTCNN, MIT, its three networks'
        # weights inside the wheel (runs offline); brings joblib and lz4.
        "mtcnn",
        # LiteRT, the successor of tf.lite.Interpreter (which TF 2.21 marks deprecated): the
        # runtime a phone or an edge box uses, and the one serving.tflite runs the exported models on.
        "ai-edge-litert",
    ],
    extras_require={
        # pytest-xdist: the README's test command runs two tests at a time (README: Set-up says why).
        "test": ["pytest", "pytest-xdist"],
        # make_records --runner=beam. apache-beam 2.77 needs protobuf < 7 and TensorFlow 2.21
        # protobuf >= 6.31.1, < 8; left alone, pip takes protobuf 7.x for TensorFlow, so the
        # pin names the range both accept.
        "beam": ["apache-beam==2.77.0", "protobuf>=6.31.1,<7"],
    },
    # the packaged model (siamese_graph/zoo/<name>/: weights, model.json, threshold, card)
    package_data={"siamese_graph.faces": ["template.json"], "siamese_graph": ["zoo/*/*"]},
    entry_points={"console_scripts": [
        "siamese-%s = siamese_graph.%s:run" % (c.replace("_", "-"), c) for c in COMMANDS]},
)
