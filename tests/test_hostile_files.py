"""Hostile model files and folder files, built at test time.

A ``.skanimal`` file comes from a stranger, and the files in a sorted folder (journals, run
records, predictions.csv, audit.csv) from a crash or an editor. Each hostile file here is
refused with one SkanimalError line naming it, and — measured in a fresh process with
``resource.getrusage`` — within a few seconds and a few tens of MB. The time and memory
bounds are generous safety limits (a refusal must not read the bomb), not speed targets.

The zip files are written by hand (:func:`_write_zip`), so a member's header can say
anything, and gigabytes of content cost a few MB of deflate stream to build.
"""

import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import pytest
from sklearn.pipeline import make_pipeline

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures, IncompatibleModelError
from skanimal.exceptions import DamagedFileError, SkanimalError
from skanimal.untrusted import read_csv, read_json

from .conftest import SMALL

GB = 1 << 30
MB = 1 << 20
# Safety limits for a refusal (generous: a refusal that read the bomb takes tens of seconds
# and gigabytes; see issue 21's table).
MAX_SECONDS = 5.0
MAX_GROWTH_MB = 100


# ----------------------------------------------------------------------- zip by hand


def _deflate(data):
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _deflate_padded(prefix, byte, size, suffix):
    """Raw deflate of ``prefix + byte * size + suffix`` and its length, built from one
    compressed MiB repeated: after a full flush the compressor's output for the same input
    is the same, so gigabytes cost milliseconds and a few MB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = bytes([byte]) * MB
    blocks, rest = divmod(size, MB)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(bytes([byte]) * rest + suffix) + compressor.flush()
    data = head + first + repeated * (blocks - 1) + tail
    return data, len(prefix) + size + len(suffix)


def _member(name, content=None, *, data=None, size=None, crc=None):
    """A member: ``content`` deflated, or raw deflate ``data`` declaring ``size``."""
    if content is not None:
        data, size, crc = _deflate(content), len(content), zlib.crc32(content)
    return {"name": name, "data": data, "size": size, "crc": crc or 0}


def _write_zip(path, members):
    """Write a zip archive whose headers say exactly what ``members`` say (zip64 end records
    when there are more than 65,535 members)."""
    central = []
    with open(path, "wb") as f:
        for m in members:
            name = m["name"].encode()
            method = 8 if m["data"] else 0
            offset = f.tell()
            f.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, m["crc"],
                                len(m["data"]), m["size"], len(name), 0) + name + m["data"])
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0,
                                       0, m["crc"], len(m["data"]), m["size"], len(name), 0,
                                       0, 0, 0, 0, offset) + name)
        start = f.tell()
        f.write(b"".join(central))
        size = f.tell() - start
        count = len(members)
        if count > 0xFFFF:
            record = f.tell()
            f.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                                size, start))
            f.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, record, 1))
            count = 0xFFFF
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, size, start, 0))
    return path


# ----------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def model_file(shapes, tmp_path_factory):
    fitted = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL),
                           BottleneckClassifier(hidden_layer_sizes=(8,), epochs=1,
                                                random_state=0)).fit(shapes.paths, shapes.target)
    return skanimal.save(fitted, tmp_path_factory.mktemp("model") / "real.skanimal")


@pytest.fixture(scope="module")
def real_members(model_file):
    with zipfile.ZipFile(model_file) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rebuilt(path, real_members, replace=None, extra=()):
    """The real model's members, some replaced, some added."""
    replace = replace or {}
    members = [replace.get(name) or _member(name, content)
               for name, content in real_members.items()]
    return _write_zip(path, members + list(extra))


_MEASURE = textwrap.dedent("""
    import json, os, resource, sys, time
    import skanimal  # imported once; each load runs in a child forked from here
    import skanimal.persistence  # (its imports too: `import skanimal` alone loads them lazily)
    import skanimal.features, sklearn.pipeline  # what load() imports once the file is read
    from skanimal.exceptions import SkanimalError

    def rss_kb():  # now, not the peak
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() // 1024

    outcomes = {}
    for path in sys.argv[1:]:
        read, write = os.pipe()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            before = rss_kb()
            try:
                skanimal.load(path)
                error = None
            except SkanimalError as exc:
                error = f"{type(exc).__name__}: {exc}"
            os.write(write, json.dumps([error, before]).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            error, before = json.loads(pipe.read())
        _, status, usage = os.wait4(pid, 0)
        # The child's peak resident size less its size when it started: what the load
        # grew by.
        outcomes[path] = {"error": error, "seconds": time.perf_counter() - start,
                          "growth_mb": (usage.ru_maxrss - before) / 1024, "status": status}
    print(json.dumps(outcomes))
""")


def _text(members):
    return members["skanimal.json"]


def _padded_description(members, folder):
    data, size = _deflate_padded(_text(members)[:-1], ord(" "), 3 * GB + 300 * MB,
                                 _text(members)[-1:])
    assert len(data) < 8 * MB  # 3.3 GB of content in a few MB
    return _rebuilt(folder / "padded.skanimal", members,
                    {"skanimal.json": _member("skanimal.json", data=data, size=size)})


def _zero_head(members, folder):
    data, size = _deflate_padded(b"", 0, 2 * GB, b"")
    return _rebuilt(folder / "zeros.skanimal", members,
                    {"head.keras": _member("head.keras", data=data, size=size)})


def _crowded(members, folder):
    return _rebuilt(folder / "crowded.skanimal", members,
                    extra=[_member(f"x{i}", b"") for i in range(200_000)])


def _a_few_too_many(members, folder):
    return _rebuilt(folder / "many.skanimal", members,
                    extra=[_member(f"note-{i}.txt", b"hello") for i in range(70)])


def _bomb_under_the_size_limit(members, folder):
    data, size = _deflate_padded(_text(members)[:-1], ord(" "), 12 * MB, _text(members)[-1:])
    return _rebuilt(folder / "bomb.skanimal", members,
                    {"skanimal.json": _member("skanimal.json", data=data, size=size)})


def _understated(members, folder):
    # The header says the real description's size and checksum; 3 GB of spaces follow.
    text = _text(members)
    data, _ = _deflate_padded(text[:-1], ord(" "), 3 * GB, text[-1:])
    return _rebuilt(folder / "liar.skanimal", members,
                    {"skanimal.json": _member("skanimal.json", data=data, size=len(text),
                                              crc=zlib.crc32(text))})


def _overstated(members, folder):
    text = _text(members)
    return _rebuilt(folder / "short.skanimal", members,
                    {"skanimal.json": _member("skanimal.json", data=_deflate(text),
                                              size=len(text) + 1000, crc=zlib.crc32(text))})


def _truncated_member(members, folder):
    head = members["head.keras"]
    data = _deflate(head)
    return _rebuilt(folder / "cut-member.skanimal", members,
                    {"head.keras": _member("head.keras", data=data[:len(data) // 2],
                                           size=len(head), crc=zlib.crc32(head))})


def _truncated_file(members, folder):
    whole = _rebuilt(folder / "whole.tmp", members).read_bytes()
    os.unlink(folder / "whole.tmp")
    path = folder / "cut.skanimal"
    path.write_bytes(whole[:len(whole) // 2])
    return path


def _listed_twice(members, folder):
    return _rebuilt(folder / "twice.skanimal", members,
                    extra=[_member("head.keras", b"not the head")])


def _bomb_inside_the_head(members, folder):
    data, size = _deflate_padded(b"{", ord(" "), 200 * MB, b"}")
    inner = _write_zip(folder / "inner.tmp", [_member("config.json", data=data, size=size),
                                              _member("metadata.json", b"{}")])
    head = inner.read_bytes()
    os.unlink(inner)
    return _rebuilt(folder / "inner-bomb.skanimal", members,
                    {"head.keras": _member("head.keras", head)})


def _weights_named_by_the_file(members, folder):
    description = json.loads(_text(members))
    features = description["steps"][0]
    features["params"]["weights"] = os.fspath(folder / "gone" / "w.weights.h5")
    features["weights_identity"] = "sha256:../../../escaped/evil"
    features["weights_included"] = True
    members = dict(members, **{"skanimal.json": json.dumps(description).encode(),
                               "weights.h5": b"not the weights"})
    return _rebuilt(folder / "named.skanimal", members)


def _oversized_int8_weights(members, folder):
    # More than the largest registered backbone's weights, declared; zeros, compressed.
    data, size = _deflate_padded(b"", 0, 300 * MB, b"")
    return _rebuilt(folder / "int8.skanimal", members,
                    extra=[_member("int8_model.xml", b"<net/>"),
                           _member("int8_model.bin", data=data, size=size)])


#: Each hostile file and a fragment of the reason it must be refused for.
HOSTILE = {
    "description padded to 3.3 GB": (_padded_description, "skanimal.json of 3,372.0 MB"),
    "head: 2 GB of zeros": (_zero_head, "head.keras of 2,048.0 MB"),
    # the model's own members (2 to 4) and the extra ones: over the limit either way
    "200,000 empty members": (_crowded, "lists 200,00"),
    "70 small extra members": (_a_few_too_many, "members; a skanimal model file has at most"),
    "a bomb under the size limit": (_bomb_under_the_size_limit, "times in its skanimal.json"),
    "a header understating the size": (_understated, "is damaged"),
    "a header overstating the size": (_overstated, "is damaged"),
    "a truncated member": (_truncated_member, "is damaged"),
    "a truncated file": (_truncated_file, "not a zip archive"),
    "a member listed twice": (_listed_twice, "lists the member 'head.keras' twice"),
    "a zip bomb inside head.keras": (_bomb_inside_the_head, "Keras head"),
    "weights named by the file": (_weights_named_by_the_file, "does not match the checksum"),
    "int8 IR weights of 300 MB": (_oversized_int8_weights, "int8_model.bin of 300.0 MB"),
}


@pytest.fixture(scope="module")
def loaded(real_members, tmp_path_factory):
    """Build every hostile file, plus a valid rebuilt model and one with members named
    outside, and load each in one fresh process: ``(folder, {name: outcome})``."""
    top = tmp_path_factory.mktemp("hostile")
    folder = top / "work"
    folder.mkdir()
    paths = {name: build(real_members, folder) for name, (build, _) in HOSTILE.items()}
    # Loaded last: they import Keras, the refusals above never do.
    paths["valid"] = _rebuilt(folder / "rebuilt.skanimal", real_members)
    paths["outside names"] = _rebuilt(
        folder / "escape.skanimal", real_members,
        extra=[_member("../victim/PWNED.txt", b"pwned"),
               _member("/tmp/skanimal-PWNED.txt", b"pwned")])
    done = subprocess.run([sys.executable, "-c", _MEASURE, *map(os.fspath, paths.values())],
                          cwd=folder, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_HOME": os.fspath(top / "keras-home")})
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    return top, paths, {name: outcomes[os.fspath(path)] for name, path in paths.items()}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_model_file_is_refused_in_one_line_quickly_and_cheaply(loaded, name):
    _, paths, outcomes = loaded
    outcome, reason = outcomes[name], HOSTILE[name][1]
    error = outcome["error"]
    assert error is not None, f"{name}: loaded"
    assert error.startswith("IncompatibleModelError: ") and "\n" not in error, error
    assert repr(os.fspath(paths[name])) in error, error
    assert reason in error, error
    assert outcome["seconds"] < MAX_SECONDS, outcome
    assert outcome["growth_mb"] < MAX_GROWTH_MB, outcome
    assert outcome["status"] == 0, outcome


def test_the_hand_written_zip_of_the_real_members_loads(loaded):
    # So the refusals above are for what was changed, not for how the files are written.
    assert loaded[2]["valid"]["error"] is None


def test_members_named_outside_are_ignored_and_written_nowhere(loaded):
    top, paths, outcomes = loaded
    assert outcomes["outside names"]["error"] is None  # unknown members: never read
    assert not (top / "victim").exists()
    assert not os.path.exists("/tmp/skanimal-PWNED.txt")
    assert sorted(os.listdir(top / "work")) == sorted(p.name for p in paths.values())


def test_embedded_weights_whose_name_the_file_chose_are_written_nowhere(loaded):
    top, _, _ = loaded
    models = top / "keras-home" / "models"  # (keras-home itself: Keras' config, on import)
    assert not models.exists() or not os.listdir(models)
    assert not (top / "escaped").exists()


def test_a_deeply_nested_description_is_refused_in_one_line(real_members, tmp_path):
    path = _rebuilt(tmp_path / "nested.skanimal", real_members,
                    {"skanimal.json": _member("skanimal.json", b"[" * 100_000 + b"]" * 100_000)})
    with pytest.raises(IncompatibleModelError, match="nested too deeply"):
        skanimal.load(path)


# ----------------------------------------------------------------------- folder files


def test_folder_json_and_csv_are_read_under_a_cap(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b" " * (2 * MB) + b"]")
    with pytest.raises(DamagedFileError, match=r"big.json' is too large for a journal"):
        read_json(big, MB, what="journal")
    cut = tmp_path / "cut.json"
    cut.write_text('{"format": "skanimal-moves", "entr')
    with pytest.raises(DamagedFileError, match="damaged or truncated"):
        read_json(cut, MB)
    wide = tmp_path / "wide.csv"
    wide.write_text("source,label\n" + "x" * 200_000 + ",cat\n")
    with pytest.raises(DamagedFileError, match="wide.csv' is not a valid CSV file"):
        read_csv(wide, MB)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"source,label\n\xff\xfe,cat\n")
    with pytest.raises(DamagedFileError, match="not UTF-8"):
        read_csv(binary, MB)
    lacking = tmp_path / "lacking.csv"
    lacking.write_text("path\nx\n")
    with pytest.raises(DamagedFileError, match="lacks the column"):
        read_csv(lacking, MB, required=("source",))
    short = tmp_path / "short.csv"
    short.write_text("source,label,confidence\na.jpg\nb.jpg,cat,0.5,extra\n")
    assert read_csv(short, MB, required=("source", "label")) == [
        {"source": "a.jpg", "label": "", "confidence": ""},
        {"source": "b.jpg", "label": "cat", "confidence": "0.5"}]
    assert issubclass(DamagedFileError, SkanimalError)
