"""The gateway's journal of answered rows: closing it twice (app lifespans that share a gateway) is harmless."""

from __future__ import annotations

import os

from shiftwatch.rollout.log_journal import LogJournal


def test_a_second_close_leaves_a_descriptor_reused_by_another_file_open(tmp_path):
    journal = LogJournal(tmp_path)
    journal.close()
    other = os.open(tmp_path / "other", os.O_WRONLY | os.O_CREAT)  # may be given the journal's old number
    try:
        journal.close()
        assert os.write(other, b"still open") == 10  # a double close would have closed this descriptor
    finally:
        os.close(other)
