"""The project's error types, and the command wrapper that prints them in one line.

Library modules raise DataError (a file, folder or record set that cannot be
used; the message names it) or ArgumentError (a bad value for a named argument;
the message is plain). Commands add what only they know: run_main prints an
ArgumentError as `--name=value: message`, since every command's flags carry the
library's argument names, and raises UserError for flags that do not go
together. A user mistake is one line on stderr and exit 1; anything else is a
bug and keeps its traceback.
"""
import errno
import sys


class Error(Exception):
    """A problem with what the user gave: reported in one line, never a traceback."""


class DataError(Error):
    """A file, folder or record set that cannot be used as it is; the message names it."""


class ArgumentError(Error):
    """A bad value for a library function's argument `name`."""

    def __init__(self, name, value, message):
        super().__init__("%s=%s: %s" % (name, format_value(value), message))
        self.name, self.value, self.message = name, value, message


class UserError(Error):
    """A command-level mistake (a missing flag, flags that do not go together)."""


def format_value(value):
    if isinstance(value, float):
        return "%g" % value
    if isinstance(value, str):
        return value if value and not any(c.isspace() for c in value) else repr(value)
    return str(value)


def one_line(error):
    """The line a command prints for a project error."""
    if isinstance(error, ArgumentError):
        return "--%s=%s: %s" % (error.name, format_value(error.value), error.message)
    return " ".join(str(error).split("\n"))


def is_disk_full(error):
    """True for an OSError or TensorFlow error caused by a full disk (ENOSPC)."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return type(error).__module__.startswith("tensorflow") and "No space left" in str(error)


def disk_full_line(error):
    """One line for a full-disk error: the file TF or the OS names, when it does."""
    name = getattr(error, "filename", None)
    if not name:
        first = str(error).splitlines()[0] if str(error) else ""
        name = first.split(";")[0].strip()[:200]
    return "no space left on device (%s); free space and rerun: complete outputs are kept" % name


def run_main(main):
    """Wraps an absl `main(argv)`: a project Error prints `error: <one line>` and exits 1.

    A full disk is not a bug either: it gets one line too, from any command."""

    def wrapped(argv):
        try:
            return main(argv)
        except Error as e:
            print("error: %s" % one_line(e), file=sys.stderr)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - re-raised unless the disk is full
            if not is_disk_full(e):
                raise
            print("error: %s" % disk_full_line(e), file=sys.stderr)
            sys.exit(1)

    return wrapped
