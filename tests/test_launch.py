"""The launchers' library (launch.py): the line that says why a task failed. The
launchers themselves run in tests/training/test_cluster.py and tests/test_data_service.py."""
from siamese_graph import launch


def test_last_error_line_picks_the_reason_from_a_tasks_log(tmp_path):
    log = tmp_path / "worker1.log"
    log.write_text("I starting\nerror: --batch_size=0: must be > 0\nI0101 shutting down\n")
    assert launch.last_error_line(str(log)) == "error: --batch_size=0: must be > 0"
    log.write_text("I starting\nFATAL Flags parsing error: Unknown command line flag 'x'\nPass --helpshort\n")
    assert launch.last_error_line(str(log)) == "FATAL Flags parsing error: Unknown command line flag 'x'"
    log.write_text("I starting\nI step 5\n\n")  # no error line: the last line
    assert launch.last_error_line(str(log)) == "I step 5"
    log.write_text("")
    assert launch.last_error_line(str(log)) == "(empty log)"
    assert launch.last_error_line(str(tmp_path / "missing.log")) == "(no log)"
    log.write_text("error: " + "x" * 1000 + "\n")
    assert len(launch.last_error_line(str(log))) == 300
