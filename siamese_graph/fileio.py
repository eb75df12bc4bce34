"""Writing files so that a reader never sees half of one: a temporary name, then a rename.

Paths are local paths or URLs of any filesystem TensorFlow reads and writes
(gs://bucket/folder, s3://..., hdfs://..., ram://... in tests): URLs go through
tf.io.gfile, local paths through os (which can also fsync).
"""
import contextlib
import json
import os
import shutil
import tempfile

from siamese_graph.errors import ArgumentError, DataError


def is_url(path):
    """True for a path of a filesystem other than the local one (gs://bucket/x)."""
    return "://" in str(path)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def exists(path):
    return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def isdir(path):
    return _gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def isfile(path):
    return exists(path) and not isdir(path)


def listdir(path):
    return [n.rstrip("/") for n in _gfile().listdir(path)] if is_url(path) else os.listdir(path)


def makedirs(path):
    _gfile().makedirs(path) if is_url(path) else os.makedirs(path, exist_ok=True)


def remove(path):
    _gfile().remove(path) if is_url(path) else os.remove(path)


def rmtree(path):
    if is_url(path):
        if _gfile().exists(path):
            _gfile().rmtree(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def getsize(path):
    return _gfile().stat(path).length if is_url(path) else os.path.getsize(path)


def replace(src, dst):
    """Renames src to dst, replacing dst (atomic on a local filesystem and on GCS objects)."""
    _gfile().rename(src, dst, overwrite=True) if is_url(src) else os.replace(src, dst)


def open_file(path, mode="r"):
    """open() for local paths, tf.io.gfile.GFile for URLs."""
    return _gfile().GFile(path, mode) if is_url(path) else open(path, mode)


def fsync_file(path):
    """Flushes a written file to disk before a rename publishes it (local paths; an
    object store's write is complete when its writer is closed)."""
    if not is_url(path):
        with open(path, "rb+") as f:
            os.fsync(f.fileno())


def temp_path(path):
    """The hidden temporary name beside `path` that atomic writes use (`.NAME.tmp`)."""
    if is_url(path):
        folder, _, name = str(path).rpartition("/")
        return folder + "/." + name + ".tmp"
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, "." + name + ".tmp")


@contextlib.contextmanager
def atomic_write(path, mode="w", fsync=False):
    """Opens a temporary file beside `path` and renames it to `path` when the block ends.

    If the block raises, the temporary file is removed and `path` is left as it was.
    Yields the open file object (`mode` "w" for text, "wb" for bytes).
    """
    tmp = temp_path(path)
    try:
        with open_file(tmp, mode) as f:
            yield f
            if fsync and not is_url(path):
                f.flush()
                os.fsync(f.fileno())
        replace(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            remove(tmp)
        raise


def write_set(files):
    """Writes an output set whole or not at all: {path: bytes or str}. Every file goes
    to its temporary name first; only when all are written are they renamed, so a
    full disk (or any error) leaves the earlier set, or nothing, never a mix."""
    temps = {}
    try:
        for path, data in files.items():
            temps[path] = temp_path(path)
            with open_file(temps[path], "wb" if isinstance(data, bytes) else "w") as f:
                f.write(data)
    except BaseException:
        for tmp in temps.values():
            with contextlib.suppress(Exception):
                remove(tmp)
        raise
    for path, tmp in temps.items():
        replace(tmp, path)


def write_text(path, text, fsync=False):
    with atomic_write(path, "w", fsync) as f:
        f.write(text)


def write_json(path, obj, fsync=False, sort_keys=True):
    write_text(path, json.dumps(obj, indent=1, sort_keys=sort_keys) + "\n", fsync)


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _probe_write(folder):
    """None when a file can be created in folder, else the OS's reason."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.remove(probe)
        return None
    except OSError as e:
        return e.strerror or str(e)


def check_writable_dir(path, name):
    """ArgumentError(name, path) unless path is, or can be made, a folder we can write in.

    Nothing is created: the nearest existing ancestor is checked instead."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ArgumentError(name, path, "is a file, not a folder")
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise ArgumentError(name, path, "%s is a file, not a folder" % base)
    reason = _probe_write(base)
    if reason:
        raise ArgumentError(name, path, "cannot write in %s (%s)" % (base, reason))


LOCK_FILE = ".lock"


@contextlib.contextmanager
def exclusive(folder, what):
    """Holds folder/.lock (an flock: the kernel drops it when the process dies, so a
    killed run never leaves it stuck) while the block runs. Creates the folder.

    Raises DataError naming the folder and the holder's pid when another process
    holds it (a second writer of the same train_dir, records or export folder).
    A URL folder (gs://...) is not locked."""
    import fcntl

    if is_url(folder):
        yield
        return
    created = not os.path.exists(folder)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    new_lock = not os.path.exists(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DataError("%s: another %s is writing here (pid %s); wait for it to end or use another folder"
                        % (folder, what, holder))
    refused = True
    try:
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())
        yield
        refused = False
    finally:
        os.close(fd)
        if created and os.listdir(folder) == [LOCK_FILE]:  # a refused run leaves nothing behind
            os.remove(path)
            os.rmdir(folder)
        elif refused and new_lock:  # nor a lock file in a folder that had none
            with contextlib.suppress(OSError):
                os.remove(path)


def check_output_outside(data_dir, out_dir, name="output_dir", data_name="data_dir"):
    """ArgumentError(name, out_dir) when the output folder is the data folder, inside it,
    or holds it; then check_writable_dir. (An output URL, gs://bucket/folder, is
    another filesystem: nothing to check here.)"""
    if is_url(out_dir):
        return
    data, out = os.path.realpath(data_dir), os.path.realpath(out_dir)
    if out == data or out.startswith(data + os.sep) or data.startswith(out + os.sep):
        raise ArgumentError(name, out_dir, "must be outside --%s=%s and not contain it" % (data_name, data_dir))
    check_writable_dir(out_dir, name)


def check_writable_file(path, name):
    """ArgumentError(name, path) unless path's folder exists and a file can be written there."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ArgumentError(name, path, "is a folder, not a file")
    if not os.path.isdir(folder):
        raise ArgumentError(name, path, "folder %s does not exist" % folder)
    reason = _probe_write(folder)
    if reason:
        raise ArgumentError(name, path, "cannot write in %s (%s)" % (folder, reason))


def fsync_tree(root):
    """Flushes every file under root, and the folders, to disk (before a rename publishes them)."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                os.fsync(f.fileno())
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def pid_alive(pid):
    """True while process pid exists (the owner of a temporary folder, say)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
