"""Files that leave the database are written completely or not at all, even on a full disk."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from lifecycle import files


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_short_writes_are_continued_until_every_byte_is_written(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def short_write(fd, data):  # a kernel may write fewer bytes than asked, without an error
        calls.append(len(data))
        return real_write(fd, bytes(data[:3]))

    monkeypatch.setattr(files.os, "write", short_write)
    written = files.write_private(tmp_path / "export.json", b'{"orders": [1, 2, 3]}\n')
    monkeypatch.undo()

    assert (tmp_path / "export.json").read_bytes() == b'{"orders": [1, 2, 3]}\n'
    assert written.bytes == 22 and len(calls) == 8
    assert stat.S_IMODE((tmp_path / "export.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("full_disk", ["returns_zero", "raises_enospc"])
def test_a_full_disk_leaves_the_previous_file_and_no_partial_one(tmp_path, monkeypatch, full_disk):
    target = tmp_path / "export.json"
    files.write_private(target, b"the previous, complete export\n")
    real_write = os.write
    budget = [10]  # room for ten more bytes, then the disk is full

    def filling_write(fd, data):
        if budget[0] == 0:
            if full_disk == "raises_enospc":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return 0
        n = real_write(fd, bytes(data[: budget[0]]))
        budget[0] -= n
        return n

    monkeypatch.setattr(files.os, "write", filling_write)
    with pytest.raises(OSError) as failure:
        files.write_private(target, [b"a new export ", b"that does not fit\n"])
    monkeypatch.undo()

    assert failure.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"the previous, complete export\n"
    assert leftovers(tmp_path) == []
