"""The train_dir on disk, its one owner: model.json (what the network is), flags.txt
(every flag of the run), threshold.json (the calibrated verdict), the checkpoints
(which one to restore, resume or rewind to), each written atomically and checked
when read. Every other module asks here.
"""
import os
import shutil
import subprocess

import numpy as np
import tensorflow as tf

from siamese_graph import fileio
from siamese_graph.data import records
from siamese_graph.errors import DataError
from siamese_graph.model.nets import nets_factory

v1 = tf.compat.v1


MODEL_FILE = "model.json"


THRESHOLD_FILE = "threshold.json"
FLAGFILE = "flags.txt"
LOGS_DIR = "logs"  # bin/train_cluster and bin/train_data_service write their tasks' logs here first


def load_config(checkpoint_dir):
    """The model config train saved as CHECKPOINT_DIR/model.json, checked for every key."""
    path = os.path.join(checkpoint_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise DataError("%s: missing (a train_dir written by siamese_graph.train has it)" % path)
    config = records.read_json(path, "model.json")
    if not isinstance(config, dict):
        raise DataError("%s: not a valid model.json (expected an object)" % path)
    config = dict(nets_factory.LEGACY_DEFAULTS, **config)
    missing = [k for k in nets_factory.MODEL_KEYS if k not in config]
    if missing:
        raise DataError("%s: not a valid model.json (missing %s)" % (path, ", ".join(missing)))
    return config


def check_threshold(value, what):
    """value as a float when it is a distance threshold a verdict can use: finite and
    above 0 (every head's Dw is sqrt(... + epsilon) > 0); else DataError naming what
    (the flag or the file it came from)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise DataError("%s: threshold %r is not a number" % (what, value))
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise DataError("%s: threshold %s is not a finite distance above 0 (distances are > 0); calibrate "
                        "again with evaluate, or give a positive threshold" % (what, value))
    return v


class DamagedCheckpoint(DataError):
    """A checkpoint whose files cannot be read back; .earlier lists the others kept."""

    def __init__(self, path, reason, earlier):
        super().__init__("%s: damaged checkpoint (%s); earlier checkpoints in the folder: %s"
                         % (path, reason, ", ".join(earlier) or "none"))
        self.path, self.reason, self.earlier = path, reason, earlier


def checkpoints(checkpoint_dir):
    """The checkpoint prefixes TF keeps in checkpoint_dir (model.ckpt-N paths), oldest first."""
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    kept = list(state.all_model_checkpoint_paths) if state else []
    return [p if os.path.isabs(p) else os.path.join(checkpoint_dir, p) for p in kept]


def resolve_checkpoint(checkpoint_dir, checkpoint_path=None):
    """The checkpoint prefix to restore: checkpoint_path (a prefix, or a name in
    checkpoint_dir such as model.ckpt-2000), else the latest. Raises DataError."""
    if not os.path.isdir(checkpoint_dir):
        raise DataError("%s: checkpoint folder not found" % checkpoint_dir)
    if not checkpoint_path:
        ckpt = tf.train.latest_checkpoint(checkpoint_dir)
        if not ckpt:
            raise DataError("%s: no checkpoint in this folder" % checkpoint_dir)
        return ckpt
    ckpt = checkpoint_path
    if not os.path.exists(ckpt + ".index") and os.path.exists(os.path.join(checkpoint_dir, ckpt) + ".index"):
        ckpt = os.path.join(checkpoint_dir, ckpt)
    if not os.path.exists(ckpt + ".index"):
        kept = ", ".join(os.path.basename(p) for p in checkpoints(checkpoint_dir)) or "none"
        raise DataError("%s: no such checkpoint (no %s.index); kept in %s: %s"
                        % (checkpoint_path, ckpt, checkpoint_dir, kept))
    return ckpt


def check_checkpoint(ckpt):
    """Reads every tensor of a checkpoint back (the reader checks each one's checksum).

    Raises DamagedCheckpoint naming it and the earlier ones kept beside it."""
    try:
        reader = tf.train.load_checkpoint(ckpt)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001 - the reader raises IndexError, OpErrors...: all mean damaged
        folder = os.path.dirname(ckpt)
        earlier = [os.path.basename(p) for p in checkpoints(folder)
                   if os.path.basename(p) != os.path.basename(ckpt)]
        raise DamagedCheckpoint(ckpt, " ".join(str(e).split())[:100], earlier)


def check_own_folder(train_dir):
    """DataError when train_dir is a folder that holds files but no model.json: not a
    train_dir (train writes model.json before its first step), so train writes nothing
    into it (its `checkpoint` file, say, would be replaced)."""
    if not os.path.isdir(train_dir) or os.path.isfile(os.path.join(train_dir, MODEL_FILE)):
        return
    foreign = sorted(n for n in os.listdir(train_dir) if n not in (fileio.LOCK_FILE, LOGS_DIR))
    if foreign:
        raise DataError("%s holds files train did not write (%s%s) and no %s: choose another folder"
                        % (train_dir, ", ".join(foreign[:3]), ", ..." if len(foreign) > 3 else "", MODEL_FILE))


def check_same_model(train_dir, config):
    """DataError when train_dir holds a checkpoint of a model other than config (the
    model.json keys: net, head, sizes)."""
    if not os.path.isdir(train_dir) or not tf.train.latest_checkpoint(train_dir):
        return
    path = os.path.join(train_dir, MODEL_FILE)
    saved = {}
    if os.path.exists(path):
        saved_all = records.read_json(path, "model.json")
        saved = {k: saved_all.get(k) for k in nets_factory.MODEL_KEYS} if isinstance(saved_all, dict) else {}
    if saved != config:
        diff = ", ".join("%s=%s (saved: %s)" % (k, config[k], saved.get(k))
                         for k in nets_factory.MODEL_KEYS if saved.get(k) != config[k])
        raise DataError("%s holds a checkpoint of another model: %s; train into another folder, "
                        "or delete that one to start fresh" % (train_dir, diff))


def write_run_record(train_dir, config, flags_text):
    """model.json (config, plus the code revision) and flags.txt (flags_text: every flag,
    loadable with --flagfile), each written atomically."""
    os.makedirs(train_dir, exist_ok=True)
    revision, dirty = code_revision()
    fileio.write_json(os.path.join(train_dir, MODEL_FILE),
                      dict(config, revision=revision, dirty=dirty))
    fileio.write_text(os.path.join(train_dir, FLAGFILE), flags_text)


def code_revision():
    """(git revision, dirty) of the code that runs, or (None, None) outside a git checkout.

    dirty lists the files with uncommitted changes (git status --porcelain), as
    FaceNet records its git diff next to a model."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here)
        if rev.returncode:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5, cwd=here)
        return rev.stdout.strip(), [line[3:] for line in status.stdout.splitlines()]
    except (OSError, subprocess.SubprocessError):
        return None, None


def rewind(train_dir, ckpt):
    """Makes ckpt the checkpoint the run resumes from (TF's `checkpoint` state file),
    keeping the ones before it in the list."""
    kept = [p for p in checkpoints(train_dir)
            if step_of(p) <= step_of(ckpt)]
    v1.train.update_checkpoint_state(train_dir, ckpt, all_model_checkpoint_paths=kept)


def step_of(path):
    """The global step in a checkpoint path (model.ckpt-N)."""
    return int(path.rsplit("-", 1)[1])


def finished(train_dir, max_steps):
    """True when train_dir's latest checkpoint is at max_steps or beyond."""
    ckpt = tf.train.latest_checkpoint(train_dir)
    return bool(ckpt) and step_of(ckpt) >= max_steps


def remove_temp_checkpoints(train_dir):
    """Removes the half-written `*_temp` folders a failed checkpoint save leaves."""
    for name in os.listdir(train_dir):
        if name.startswith("model.ckpt-") and name.endswith("_temp"):
            shutil.rmtree(os.path.join(train_dir, name), ignore_errors=True)
