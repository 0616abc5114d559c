"""The one atomic file writer and JSON converter."""

import json
import os
import stat

import numpy as np
import pytest

from skanimal import fileio
from skanimal.fileio import TMP_PREFIX, atomic_write, to_jsonable, write_bytes, write_json


def test_write_replaces_whole_file_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "model.bin"
    write_bytes(target, b"old")
    write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["model.bin"]


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write('{"half": ')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_copy_to_new_never_overwrites_and_leaves_nothing_partial(tmp_path, monkeypatch):
    source, taken, new = tmp_path / "a.jpg", tmp_path / "taken.jpg", tmp_path / "new.jpg"
    source.write_bytes(b"photo" * 1000)
    taken.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        fileio.copy_to_new(source, taken)
    assert taken.read_bytes() == b"someone else's"

    def full_disk(src, dst, length=0):
        dst.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.shutil, "copyfileobj", full_disk)
    with pytest.raises(OSError, match="No space"):
        fileio.copy_to_new(source, new)
    assert not new.exists()


@pytest.mark.skipif(not fileio.CAN_SYNC_FILE_SYSTEMS, reason="Linux only")
def test_sync_file_systems_reports_a_failed_sync(tmp_path, monkeypatch):
    (tmp_path / "a").write_bytes(b"a")
    fileio.sync_file_systems([tmp_path / "a", tmp_path])  # one file system: one call

    monkeypatch.setattr(fileio, "_syncfs", lambda: lambda fd: -1)
    with pytest.raises(OSError):
        fileio.sync_file_systems([tmp_path / "a"])


def test_to_jsonable_is_exact_or_refuses():
    value = {1: (np.int64(3), np.float32(0.5)), "s": {3, 1}, "nan": float("nan"),
             "arr": np.array([[1, 2]]), "b": np.bool_(True)}
    assert to_jsonable(value) == {"1": [3, 0.5], "s": [1, 3], "nan": None,
                                  "arr": [[1, 2]], "b": True}
    assert type(to_jsonable(np.int64(3))) is int
    with pytest.raises(TypeError, match="object"):
        to_jsonable(object())
