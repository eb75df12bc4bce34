"""User errors and the CLI wrapper that turns them into one line on stderr."""
import sys


class UserError(Exception):
    """A mistake in the user's input (a file, a flag): one line on stderr, exit 1."""


def run_main(main):
    """Wraps an absl `main(argv)` so a UserError prints one line and exits 1."""

    def wrapped(argv):
        try:
            return main(argv)
        except UserError as e:
            print("error: %s" % e, file=sys.stderr)
            sys.exit(1)

    return wrapped
