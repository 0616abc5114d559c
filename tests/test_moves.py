"""Journaled, crash-safe transfers: every photo exactly once, none partial, none overwritten."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from skanimal import fileio, moves
from skanimal.moves import TransferError


def make_files(folder, n, size=64, prefix="img"):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{prefix}_{i:03d}.jpg"
        path.write_bytes(bytes([i % 251]) * size + f"#{prefix}{i}".encode())
        paths.append(path)
    return paths


def no_temporaries(*folders):
    return not [p for folder in folders for p in Path(folder).rglob(f"{fileio.TMP_PREFIX}*")]


def force_copy_branch(monkeypatch):
    """Make every hard link fail as across file systems (EXDEV), as /tmp may share one."""
    def cross_device(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)


def test_copy_leaves_sources_and_keeps_dates(tmp_path):
    sources = make_files(tmp_path / "in", 3)
    os.utime(sources[0], (1_000_000_000, 1_000_000_000))
    before = [p.read_bytes() for p in sources]
    finals = moves.transfer([(p, tmp_path / "out" / "cat") for p in sources])
    assert finals == [tmp_path / "out" / "cat" / p.name for p in sources]
    assert [p.read_bytes() for p in sources] == before
    assert [p.read_bytes() for p in finals] == before
    assert finals[0].stat().st_mtime == 1_000_000_000
    assert no_temporaries(tmp_path)


def test_copies_keep_a_private_photo_private(tmp_path):
    (source,) = make_files(tmp_path / "in", 1)
    source.chmod(0o600)
    (final,) = moves.transfer([(source, tmp_path / "out")])
    assert final.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(not fileio.CAN_SYNC_FILE_SYSTEMS, reason="copies are synced one by one")
def test_a_group_of_copies_is_synced_once_before_any_is_published(tmp_path, monkeypatch):
    sources = make_files(tmp_path / "in", 5)
    out = tmp_path / "out"
    synced, fsyncs = [], []
    real_sync, real_fsync = fileio.sync_file_systems, os.fsync

    def sync(paths):
        paths = list(paths)
        # Nothing carries its final name yet: a power cut now leaves no partial photo.
        assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
            os.path.basename(p) for p in paths)
        assert all(os.path.basename(p).startswith(fileio.TMP_PREFIX) for p in paths)
        synced.append(len(paths))
        real_sync(paths)

    monkeypatch.setattr(fileio, "sync_file_systems", sync)
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd) or real_fsync(fd))
    finals = moves.transfer([(p, out / ("a" if i % 2 else "b")) for i, p in enumerate(sources)])
    assert synced == [5]
    assert len(fsyncs) <= 3  # the entries of the folders touched (a, b, in), not one per photo
    assert [p.read_bytes() for p in finals] == [p.read_bytes() for p in sources]
    assert no_temporaries(tmp_path)


def test_collision_gets_a_suffix_and_never_overwrites(tmp_path):
    (source,) = make_files(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / source.name).write_bytes(b"someone else's photo")
    stem = source.stem
    (out / f"{stem} (1).jpg").write_bytes(b"and another one")
    (final,) = moves.transfer([(source, out)])
    assert final == out / f"{stem} (2).jpg"
    assert final.read_bytes() == source.read_bytes()
    assert (out / source.name).read_bytes() == b"someone else's photo"
    assert (out / f"{stem} (1).jpg").read_bytes() == b"and another one"


def test_same_names_in_one_transfer_both_kept(tmp_path):
    a = tmp_path / "a" / "x.jpg"
    b = tmp_path / "b" / "x.jpg"
    for path, data in ((a, b"first"), (b, b"second")):
        path.parent.mkdir()
        path.write_bytes(data)
    finals = moves.transfer([(a, tmp_path / "out"), (b, tmp_path / "out")], mode="move",
                            journal=tmp_path / "j.json")
    assert [p.name for p in finals] == ["x.jpg", "x (1).jpg"]
    assert [p.read_bytes() for p in finals] == [b"first", b"second"]
    assert not a.exists() and not b.exists()


def test_rerun_neither_duplicates_nor_overwrites(tmp_path):
    sources = make_files(tmp_path / "in", 4)
    pairs = [(p, tmp_path / "out") for p in sources]
    first = moves.transfer(pairs)
    stamp = [p.stat().st_ino for p in first]
    second = moves.transfer(pairs, mode="copy")
    assert second == first
    assert sorted((tmp_path / "out").iterdir()) == sorted(first)
    assert [p.stat().st_ino for p in second] == stamp  # not rewritten


def test_identical_bytes_under_a_suffixed_name_are_reused(tmp_path):
    (source,) = make_files(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / source.name).write_bytes(b"different")
    (out / f"{source.stem} (1).jpg").write_bytes(source.read_bytes())
    (final,) = moves.transfer([(source, out)])
    assert final == out / f"{source.stem} (1).jpg"
    assert len(list(out.iterdir())) == 2


def test_move_and_undo(tmp_path):
    sources = make_files(tmp_path / "in" / "deep", 5)
    data = {p: p.read_bytes() for p in sources}
    journal = tmp_path / "journal.json"
    pairs = [(p, tmp_path / "out" / ("odd" if i % 2 else "even")) for i, p in enumerate(sources)]
    finals = moves.transfer(pairs, mode="move", journal=journal)
    assert not any(p.exists() for p in sources)
    assert [f.read_bytes() for f in finals] == [data[p] for p in sources]
    assert json.loads(journal.read_text())["state"] == "done"
    restored = moves.undo(journal)
    assert restored == sources
    assert all(p.read_bytes() == data[p] for p in sources)
    assert not any(f.exists() for f in finals)
    assert json.loads(journal.read_text())["state"] == "undone"
    assert moves.undo(journal) == sources  # undo twice is harmless
    with pytest.raises(TransferError, match="undone"):
        moves.transfer(pairs, mode="move", journal=journal)


def test_undo_when_the_source_name_was_taken_meanwhile(tmp_path):
    (source,) = make_files(tmp_path / "in", 1)
    data = source.read_bytes()
    journal = tmp_path / "j.json"
    moves.transfer([(source, tmp_path / "out")], mode="move", journal=journal)
    source.write_bytes(b"a new photo with the old name")
    (restored,) = moves.undo(journal)
    assert restored == source.with_name(f"{source.stem} (1).jpg")
    assert restored.read_bytes() == data
    assert source.read_bytes() == b"a new photo with the old name"


def test_undo_of_a_copy_removes_only_our_copies(tmp_path):
    sources = make_files(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / sources[1].name).write_bytes(sources[1].read_bytes())  # there before
    journal = tmp_path / "j.json"
    moves.transfer([(p, out) for p in sources], journal=journal)
    moves.undo(journal)
    assert not (out / sources[0].name).exists()
    assert (out / sources[1].name).exists()
    assert all(p.exists() for p in sources)


def test_move_of_an_identical_file_already_there_and_its_undo(tmp_path):
    (source,) = make_files(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / source.name).write_bytes(source.read_bytes())
    journal = tmp_path / "j.json"
    (final,) = moves.transfer([(source, out)], mode="move", journal=journal)
    assert final == out / source.name and not source.exists()
    assert list(out.iterdir()) == [final]
    moves.undo(journal)
    assert source.exists() and final.exists()  # the one there before stays


def test_move_into_its_own_folder_loses_nothing(tmp_path):
    (source,) = make_files(tmp_path / "in", 1)
    data = source.read_bytes()
    journal = tmp_path / "j.json"
    assert moves.transfer([(source, source.parent)], mode="move", journal=journal) == [source]
    assert source.read_bytes() == data
    moves.undo(journal)
    assert source.read_bytes() == data


def test_move_needs_a_journal_and_checks_mode(tmp_path):
    (source,) = make_files(tmp_path / "in", 1)
    with pytest.raises(ValueError, match="journal"):
        moves.transfer([(source, tmp_path / "out")], mode="move")
    with pytest.raises(ValueError, match="mode"):
        moves.transfer([(source, tmp_path / "out")], mode="rename")
    with pytest.raises(ValueError, match=r"moves\[0\]"):
        moves.transfer([source])


def test_a_journal_of_another_transfer_is_refused(tmp_path):
    a, b = make_files(tmp_path / "in", 2)
    journal = tmp_path / "j.json"
    moves.transfer([(a, tmp_path / "out")], mode="move", journal=journal)
    with pytest.raises(TransferError, match="different transfer"):
        moves.transfer([(b, tmp_path / "out")], mode="move", journal=journal)
    assert b.exists()


def test_bad_sources_are_reported_before_anything_moves(tmp_path, monkeypatch):
    sources = make_files(tmp_path / "in", 3)
    journal = tmp_path / "j.json"
    missing = tmp_path / "in" / "gone.jpg"
    with pytest.raises(TransferError, match="gone.jpg.*does not exist"):
        moves.transfer([(p, tmp_path / "out") for p in sources + [missing]], mode="move",
                       journal=journal)
    real_access = os.access
    monkeypatch.setattr(os, "access",
                        lambda p, m, **k: os.fspath(p) != os.fspath(sources[1])
                        and real_access(p, m, **k))
    with pytest.raises(TransferError, match=f"{sources[1].name}.*not readable"):
        moves.transfer([(p, tmp_path / "out") for p in sources], mode="move", journal=journal)
    assert all(p.exists() for p in sources)
    assert not (tmp_path / "out").exists() and not journal.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(TransferError, match="not a folder"):
        moves.transfer([(sources[0], tmp_path / "file")])


def test_read_error_mid_copy_leaves_the_photo_in_place(tmp_path, monkeypatch):
    sources = make_files(tmp_path / "in", 3)
    data = [p.read_bytes() for p in sources]
    force_copy_branch(monkeypatch)
    real_copy = fileio.shutil.copyfileobj

    def failing_copy(src, dst, length=0):
        if src.name == os.fspath(sources[1]):
            dst.write(b"half")
            raise OSError(errno.EIO, "Input/output error")
        return real_copy(src, dst, length)

    monkeypatch.setattr(fileio.shutil, "copyfileobj", failing_copy)
    journal = tmp_path / "j.json"
    with pytest.raises(TransferError, match=f"{sources[1].name}.*Input/output error"):
        moves.transfer([(p, tmp_path / "out") for p in sources], mode="move", journal=journal)
    assert [p.read_bytes() for p in sources[1:]] == data[1:]  # left in place, whole
    assert (tmp_path / "out" / sources[0].name).read_bytes() == data[0]
    assert sorted(os.listdir(tmp_path / "out")) == [sources[0].name]  # nothing partial
    monkeypatch.setattr(fileio.shutil, "copyfileobj", real_copy)
    finals = moves.resume(journal)
    assert [p.read_bytes() for p in finals] == data
    assert not any(p.exists() for p in sources)


def test_across_file_systems_copies_syncs_then_unlinks(tmp_path, monkeypatch):
    sources = make_files(tmp_path / "in", 4)
    data = [p.read_bytes() for p in sources]
    force_copy_branch(monkeypatch)
    journal = tmp_path / "j.json"
    finals = moves.transfer([(p, tmp_path / "out") for p in sources], mode="move",
                            journal=journal)
    assert [p.read_bytes() for p in finals] == data
    assert all(p.stat().st_nlink == 1 for p in finals)  # real copies, not links
    assert not any(p.exists() for p in sources)
    assert no_temporaries(tmp_path)
    moves.undo(journal)
    assert [p.read_bytes() for p in sources] == data
    assert not any(p.exists() for p in finals)


def test_link_mode_hard_links_or_symlinks_across_file_systems(tmp_path, monkeypatch):
    (source,) = make_files(tmp_path / "in", 1)
    (final,) = moves.transfer([(source, tmp_path / "hard")], mode="link")
    assert final.stat().st_ino == source.stat().st_ino
    force_copy_branch(monkeypatch)
    (final,) = moves.transfer([(source, tmp_path / "soft")], mode="link")
    assert final.is_symlink() and final.read_bytes() == source.read_bytes()
    assert moves.transfer([(source, tmp_path / "soft")], mode="link") == [final]


@pytest.mark.parametrize("crash_at", [1, 2, 5])
def test_crash_between_link_and_unlink_then_resume(tmp_path, monkeypatch, crash_at):
    """An in-process stand-in for a kill: the n-th unlink of a source never happens."""
    sources = make_files(tmp_path / "in", 6)
    data = {p.name: p.read_bytes() for p in sources}
    journal = tmp_path / "j.json"
    pairs = [(p, tmp_path / "out") for p in sources]
    real_unlink, calls = os.unlink, []

    def dying_unlink(path, *args, **kwargs):
        if Path(path).parent == tmp_path / "in":
            calls.append(path)
            if len(calls) == crash_at:
                raise KeyboardInterrupt  # not an OSError: nothing catches it
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", dying_unlink)
    with pytest.raises(KeyboardInterrupt):
        moves.transfer(pairs, mode="move", journal=journal)
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert [s for s, _ in moves.pending(tmp_path)] == [journal]
    finals = moves.transfer(pairs, mode="move", journal=journal)
    assert sorted(os.listdir(tmp_path / "out")) == sorted(data)
    assert {p.name: p.read_bytes() for p in finals} == data
    assert not any(p.exists() for p in sources)
    assert moves.pending(tmp_path) == []


def test_interrupted_undo_reruns(tmp_path, monkeypatch):
    sources = make_files(tmp_path / "in", 4)
    data = {p: p.read_bytes() for p in sources}
    journal = tmp_path / "j.json"
    moves.transfer([(p, tmp_path / "out") for p in sources], mode="move", journal=journal)
    real_unlink, calls = os.unlink, []

    def dying_unlink(path, *args, **kwargs):
        if Path(path).parent == tmp_path / "out":
            calls.append(path)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", dying_unlink)
    with pytest.raises(KeyboardInterrupt):
        moves.undo(journal)
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert moves.pending(tmp_path) == [(journal, "undoing")]
    with pytest.raises(TransferError, match="undone"):
        moves.resume(journal)
    moves.undo(journal)
    assert {p: p.read_bytes() for p in sources} == data
    assert os.listdir(tmp_path / "out") == []


def test_a_name_taken_after_planning_is_chosen_again_and_journaled(tmp_path, monkeypatch):
    a, b = make_files(tmp_path / "in", 2)
    out = tmp_path / "out"
    journal = tmp_path / "j.json"
    real_link = os.link

    def intruding_link(src, dst, *args, **kwargs):
        if Path(dst) == out / b.name and not Path(dst).exists():
            Path(dst).write_bytes(b"intruder")  # someone else writes that name first
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", intruding_link)
    finals = moves.transfer([(a, out), (b, out)], mode="move", journal=journal)
    assert finals[1] == out / f"{b.stem} (1).jpg"
    assert (out / b.name).read_bytes() == b"intruder"
    recorded = json.loads(journal.read_text())["entries"][1]["destination"]
    assert recorded == os.fspath(finals[1])


# --- a real SIGKILL of a moving process ------------------------------------------------

CHILD = textwrap.dedent("""
    import errno, json, os, sys
    from skanimal import moves
    pairs, journal, cross_device, mode = json.loads(sys.argv[1])
    if cross_device:
        def no_link(src, dst, *args, **kwargs):
            if ".skanimal-tmp-" not in os.path.basename(os.fspath(src)):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real_link(src, dst, *args, **kwargs)
        real_link, os.link = os.link, no_link
    print("go", flush=True)
    moves.transfer(pairs, mode=mode, journal=journal)
    print("done", flush=True)
""")


def run_child(pairs, journal, cross_device, mode="move"):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps([pairs, journal, cross_device, mode])],
        stdout=subprocess.PIPE, text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode, cross_device", [("move", False), ("move", True), ("copy", False)],
                         ids=["rename", "move-by-copy", "copy"])
def test_sigkill_at_many_moments_then_rerun(tmp_path, mode, cross_device):
    n = 60
    kills_mid_way = 0
    for trial, kill_after in enumerate([0, 1, 7, 23, 41, 59, None]):
        root = tmp_path / f"trial{trial}"
        sources = make_files(root / "in", n, size=20_000)
        data = {p.name: p.read_bytes() for p in sources}
        out = root / "out"
        pairs = [[os.fspath(p), os.fspath(out / ("a" if i % 3 else "b"))]
                 for i, p in enumerate(sources)]
        journal = os.fspath(root / "journal.json")
        child = run_child(pairs, journal, cross_device, mode)
        assert child.stdout.readline() == "go\n"
        if kill_after is None:
            time.sleep(0.01 * trial)  # a moment picked by time, not by progress
        else:
            while sum(1 for _ in out.rglob("img_*")) < kill_after and child.poll() is None:
                time.sleep(0.0005)
        child.send_signal(signal.SIGKILL)
        child.wait()

        # Right after the kill: every photo is complete somewhere; no partial file anywhere.
        def present(root=root, out=out, data=data):
            found = {}
            for path in [*root.joinpath("in").iterdir(), *out.rglob("*")]:
                if path.is_file() and not path.name.startswith(fileio.TMP_PREFIX):
                    assert path.read_bytes() == data[path.name], f"partial {path}"
                    found.setdefault(path.name, []).append(path)
            return found

        found = present()
        assert set(found) == set(data)
        copied = sum(1 for _ in out.rglob("img_*"))
        kills_mid_way += 0 < copied < n
        if mode == "copy":
            assert all(p.exists() for p in sources)

        rerun = run_child(pairs, journal, cross_device, mode)
        assert rerun.communicate(timeout=120)[0].split() == ["go", "done"]
        found = present()
        expected = 2 if mode == "copy" else 1  # the source, and its one copy
        assert all(len(where) == expected for where in found.values()), \
            "a photo is duplicated or missing"
        assert set(found) == set(data)
        assert all(p.exists() for p in sources) == (mode == "copy")
        assert no_temporaries(root)

        moves.undo(journal)
        assert {p.name: p.read_bytes() for p in sources} == data
        assert not list(out.rglob("img_*"))
    assert kills_mid_way >= 3, "the kills did not land in the middle of the transfer"


# --- a journal is read as untrusted input (issue 21.3) -------------------------------------


def _moved(tmp_path):
    sources = make_files(tmp_path / "in", 3)
    data = {p: p.read_bytes() for p in sources}
    journal = tmp_path / "journal.json"
    moves.transfer([(p, tmp_path / "out") for p in sources], mode="move", journal=journal)
    return sources, data, journal


@pytest.mark.parametrize("damage, reason", [
    (lambda text: text[:len(text) // 2], "damaged or truncated"),
    (lambda text: "\udcff", "not UTF-8"),
    (lambda text: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (lambda text: text.replace('"existing": false', '"existing": "no"', 1), "is damaged"),
    (lambda text: text.replace('"entries": [', '"entries": 7, "x": [', 1), "is damaged"),
    # The token names temporary files to delete: "*" would match everyone's.
    (lambda text: json.dumps(dict(json.loads(text), token="*")), "is damaged"),
    (lambda text: json.dumps(dict(json.loads(text), state="whatever")), "is damaged"),
])
def test_a_damaged_journal_is_named_in_one_line_and_nothing_moves(tmp_path, damage, reason):
    sources, data, journal = _moved(tmp_path)
    on_disk = sorted((tmp_path / "out").iterdir())
    journal.write_bytes(damage(journal.read_text()).encode("utf-8", "surrogateescape"))
    for operation in (moves.undo, moves.resume):
        with pytest.raises(TransferError) as info:
            operation(journal)
        message = str(info.value)
        assert "\n" not in message and repr(os.fspath(journal)) in message, message
        assert reason in message, message
    assert sorted((tmp_path / "out").iterdir()) == on_disk
    assert not any(p.exists() for p in sources)


def test_an_oversized_journal_is_refused_unread_and_never_written(tmp_path, monkeypatch):
    sources, _, journal = _moved(tmp_path)
    monkeypatch.setattr(moves, "MAX_JOURNAL_BYTES", journal.stat().st_size - 1)
    with pytest.raises(TransferError, match="too large for a transfer journal"):
        moves.undo(journal)
    # transfer() refuses to plan a journal it could not read back, before anything moves.
    more = make_files(tmp_path / "more", 3, prefix="more")
    with pytest.raises(TransferError, match="transfer them in smaller groups"):
        moves.transfer([(p, tmp_path / "out2") for p in more], mode="move",
                       journal=tmp_path / "journal2.json")
    assert all(p.exists() for p in more) and not (tmp_path / "journal2.json").exists()


def test_on_file_is_told_of_each_file_in_order(tmp_path):
    sources = make_files(tmp_path / "in", 5)
    pairs = [(source, tmp_path / "out" / ("a" if i % 2 else "b"))
             for i, source in enumerate(sources)]
    told = []
    finals = moves.transfer(pairs, mode="move", journal=tmp_path / "j.json",
                            on_file=told.append)
    assert told == finals and len(told) == 5 and all(p.exists() for p in told)
