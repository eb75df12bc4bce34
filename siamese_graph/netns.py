"""Loopback only: the local launchers (bin/train_cluster, bin/train_data_service) run
their servers in a network namespace of their own whose only interface is loopback.

TensorFlow's gRPC servers (tf.distribute.Server, the tf.data service's dispatcher
and workers) listen on every interface of the host (`*:PORT` in `ss -ltn`) whatever
host the cluster spec names, and have no authentication; TF has no option to bind
one address. A launcher that starts all its tasks on this machine therefore
re-runs itself under `unshare --net` (util-linux; as a user without root, with
`--map-root-user`), brings that namespace's loopback up, and starts every task
there: the servers are then reachable from that launcher's processes only, not
from the machine's network or its other users. Where no namespace can be made,
the launcher refuses in one line (ALLOW_ALL_ENV=1 runs it anyway, on a trusted
network only). Multi-host clusters run `train` on each host: see docs/scaling.md.
"""
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys

INSIDE_ENV = "SIAMESE_GRAPH_PRIVATE_NETWORK"
ALLOW_ALL_ENV = "SIAMESE_GRAPH_ALLOW_ALL_INTERFACES"
_GET_IF_STATE, _SET_IF_STATE, _IFF_UP = 0x8913, 0x8914, 0x1


class NoPrivateNetwork(Exception):
    """No network namespace could be made here; the message says why."""


def unshare_command():
    """The command prefix that runs a program in a new network namespace."""
    cmd = ["unshare", "--net"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")
    return cmd + ["--"]


def can_unshare():
    """None when a network namespace can be made here, else the reason."""
    if not shutil.which("unshare"):
        return "the unshare command (util-linux) is not installed"
    r = subprocess.run(unshare_command() + ["true"], capture_output=True, text=True)
    if r.returncode:
        return "unshare --net failed: %s" % (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
    return None


def loopback_up():
    """Sets this namespace's loopback interface up (a new namespace starts with it down)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, _GET_IF_STATE, ifr))[1]
        fcntl.ioctl(s, _SET_IF_STATE, struct.pack("16sh", b"lo", flags | _IFF_UP))
    finally:
        s.close()


def interfaces():
    """The network interface names of this process's namespace."""
    return sorted(name for _, name in socket.if_nameindex())


def isolate(argv):
    """Makes the calling launcher run in a loopback-only network namespace.

    Outside one: re-executes `python argv...` under unshare (the process keeps its
    pid, so signals and the caller's wait still reach it). Inside (INSIDE_ENV set
    by the re-execution): brings loopback up and returns "private". With
    ALLOW_ALL_ENV=1 returns "all interfaces" and changes nothing.
    Raises NoPrivateNetwork when no namespace can be made."""
    if os.environ.get(INSIDE_ENV) == "1":
        loopback_up()
        return "private"
    if os.environ.get(ALLOW_ALL_ENV) == "1":
        return "all interfaces"
    reason = can_unshare()
    if reason:
        raise NoPrivateNetwork("%s; TensorFlow's servers listen on every interface and have no "
                               "authentication, so this launcher runs them in a private network "
                               "namespace (set %s=1 to run them anyway, on a trusted network only)"
                               % (reason, ALLOW_ALL_ENV))
    env = dict(os.environ, **{INSIDE_ENV: "1"})
    sys.stdout.flush()
    sys.stderr.flush()
    cmd = unshare_command() + [sys.executable] + list(argv)
    os.execvpe(cmd[0], cmd, env)
