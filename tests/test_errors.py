"""Errors (errors.py): the one line a command prints for a project error, and for a full disk."""
import pytest
import tensorflow as tf

from siamese_graph import errors


def test_one_line_names_the_flag_and_joins_lines():
    e = errors.ArgumentError("lr_max", float("nan"), "must be a finite number")
    assert errors.one_line(e) == "--lr_max=nan: must be a finite number"
    assert errors.one_line(errors.ArgumentError("crop", "a b", "bad")) == "--crop='a b': bad"
    assert errors.one_line(errors.DataError("x.txt:3: bad\nline")) == "x.txt:3: bad line"


def test_a_project_error_exits_1_with_its_line(capsys):
    def main(argv):
        raise errors.DataError("/d/identity.txt: not found")

    with pytest.raises(SystemExit) as exit_:
        errors.run_main(main)([])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: /d/identity.txt: not found\n"
    assert errors.run_main(lambda argv: 7)([]) == 7  # the control: a main that succeeds returns its value

def test_disk_full_is_one_line_from_any_command(capsys):
    for err in (OSError(28, "No space left on device", "/x/shard.tmp"),
                tf.errors.ResourceExhaustedError(None, None, "/x/model.ckpt-5_temp/part-0; No space left on device")):
        def main(argv, err=err):
            raise err
        with pytest.raises(SystemExit) as exit_:
            errors.run_main(main)([])
        assert exit_.value.code == 1
        line = capsys.readouterr().err.strip()
        assert line.startswith("error: no space left on device (/x/") and "\n" not in line
    with pytest.raises(ValueError):  # anything else is a bug and keeps its traceback
        errors.run_main(lambda argv: (_ for _ in ()).throw(ValueError("bug")))([])
