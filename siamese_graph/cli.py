"""Shared CLI plumbing: one-line user errors, flags several scripts define."""
from absl import flags

from siamese_graph.errors import run_main  # noqa: F401  (re-exported for the scripts)


def define(kind, name, default, help_text, enum_values=None):
    """flags.DEFINE_<kind>, unless a script imported earlier in this process did.

    The scripts share flag names with one meaning each (--records_dir, --seed,
    --image_size...), and tests import several scripts into one process.
    """
    if name not in flags.FLAGS:
        if kind == "enum":
            flags.DEFINE_enum(name, default, enum_values, help_text)
        else:
            getattr(flags, "DEFINE_" + kind)(name, default, help_text)
