"""Tests of the on-disk feature cache (skanimal.cache)."""

import errno
import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import skanimal.cache as cache_mod
import skanimal.fileio as fileio
from skanimal.cache import (
    ENV_VAR,
    FEATURE_FORMAT_VERSION,
    FeatureCache,
    cache_info,
    clear_cache,
    hash_array_row,
    hash_bytes,
    hash_file,
    make_fingerprint,
    resolve_cache_dir,
)
from skanimal.exceptions import CacheWarning

IS_POSIX = os.name == "posix"
PKG_DIR = str(Path(cache_mod.__file__).resolve().parent)
FP = make_fingerprint(backbone="vgg16", weights="imagenet", image_size=(224, 224),
                      pooling=None, preprocessing="caffe", precision="float32")
FP2 = make_fingerprint(backbone="vgg16", weights="imagenet", image_size=(224, 224),
                       pooling="avg", preprocessing="caffe", precision="float32")

# Child processes load skanimal.cache without executing skanimal/__init__.py (which pulls
# in TensorFlow), so each one starts in a fraction of a second.
CHILD_PRELUDE = textwrap.dedent(f"""
    import os, sys, time, types
    pkg = types.ModuleType("skanimal")
    pkg.__path__ = [{PKG_DIR!r}]
    sys.modules["skanimal"] = pkg
    import numpy as np
    from skanimal.cache import FeatureCache
""")


def run_child(code, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code), *map(str, args)],
        **kwargs,
    )


def key_of(i):
    return hash_bytes(f"image-{i}".encode())


def features(i, n=512):
    return np.random.default_rng(i).standard_normal(n).astype(np.float32)


def cache_warnings(records):
    return [w for w in records if issubclass(w.category, CacheWarning)]


def temp_files(directory):
    return [p for p in Path(directory).rglob(".skanimal-tmp-*")]


# --- round trip -----------------------------------------------------------------------
def test_round_trip_is_bit_exact(tmp_path):
    store = FeatureCache(tmp_path, FP)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4e38, -1.5],
                       dtype=np.float32)
    cases = {key_of(0): features(0, 25088), key_of(1): special,
             key_of(2): np.zeros(0, dtype=np.float32), key_of(3): features(3, 1)}
    store.put_many(cases)
    for key, expected in cases.items():
        got = store.get(key)
        assert got.dtype == np.float32 and got.ndim == 1
        assert got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()  # bit-exact, NaN and -0.0 included
        assert got.flags.writeable and got.flags.owndata


def test_put_casts_to_float32(tmp_path):
    store = FeatureCache(tmp_path, FP)
    x64 = np.random.default_rng(0).standard_normal(100)
    store.put(key_of(0), x64)
    store.put(key_of(1), np.arange(10, dtype=">f4"))  # big-endian input
    assert np.array_equal(store.get(key_of(0)), x64.astype(np.float32))
    got = store.get(key_of(1))
    assert got.dtype == np.dtype(np.float32) and np.array_equal(got, np.arange(10))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arr=hnp.arrays(np.float32, st.integers(0, 300),
                      elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_round_trip_property(tmp_path, arr):
    store = FeatureCache(tmp_path, FP)
    key = hash_array_row(arr)
    store.put(key, arr)
    assert store.get(key).tobytes() == arr.tobytes()


def test_miss_returns_none(tmp_path):
    store = FeatureCache(tmp_path / "does-not-exist-yet", FP)
    assert store.get(key_of(0)) is None
    store.put(key_of(1), features(1))
    result = store.get_many([key_of(0), key_of(1), key_of(2)])
    assert result[0] is None and result[2] is None
    assert np.array_equal(result[1], features(1))
    assert store.enabled


def test_put_overwrites(tmp_path):
    store = FeatureCache(tmp_path, FP)
    store.put(key_of(0), features(0))
    store.put(key_of(0), features(1))
    assert np.array_equal(store.get(key_of(0)), features(1))


def test_fingerprints_do_not_collide(tmp_path):
    a, b = FeatureCache(tmp_path, FP), FeatureCache(tmp_path, FP2)
    a.put(key_of(0), features(0))
    assert b.get(key_of(0)) is None
    b.put(key_of(0), features(1))
    assert np.array_equal(a.get(key_of(0)), features(0))
    assert np.array_equal(b.get(key_of(0)), features(1))
    assert cache_info(tmp_path)["fingerprints"] == 2


def test_entry_moved_to_another_key_or_fingerprint_is_rejected(tmp_path):
    # The digest covers fingerprint and key: a file in the wrong slot is foreign.
    store = FeatureCache(tmp_path, FP)
    store.put(key_of(0), features(0))
    src = store.entry_path(key_of(0)).read_bytes()
    for other, key in [(store, key_of(1)), (FeatureCache(tmp_path, FP[:16] + "0" * 48), key_of(0))]:
        dst = other.entry_path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src)
        assert other.get(key) is None


def test_invalid_arguments_raise_value_error(tmp_path):
    store = FeatureCache(tmp_path, FP)
    for bad_key in ["../../etc/passwd", "ABCDEF0123456789", "abc", 123, None]:
        with pytest.raises(ValueError):
            store.get(bad_key)
        with pytest.raises(ValueError):
            store.put(bad_key, features(0))
    with pytest.raises(ValueError, match="1-D"):
        store.put(key_of(0), np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        store.put(key_of(0), np.array(["a", "b"]))
    with pytest.raises(ValueError):
        FeatureCache(tmp_path, "not a fingerprint")
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_pickle_round_trip(tmp_path):
    store = FeatureCache(tmp_path, FP)
    store.put(key_of(0), features(0))
    clone = pickle.loads(pickle.dumps(store))
    assert clone.fingerprint == FP and clone.directory == store.directory
    assert np.array_equal(clone.get(key_of(0)), features(0))


# --- keys -----------------------------------------------------------------------------
def test_hash_bytes_and_hash_file(tmp_path):
    data = bytes(range(256)) * 5000  # > 1 MiB so hash_file streams several blocks
    assert hash_bytes(data) == hash_bytes(bytes(data))
    assert len(hash_bytes(data)) == 64
    changed = bytearray(data)
    changed[123456] ^= 1
    assert hash_bytes(bytes(changed)) != hash_bytes(data)
    path = tmp_path / "img.jpg"
    path.write_bytes(data)
    assert hash_file(path) == hash_bytes(data)
    assert hash_file(str(path)) == hash_bytes(data)


def test_hash_array_row_depends_on_dtype_shape_and_content():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert hash_array_row(a) == hash_array_row(a.copy())
    assert hash_array_row(a) == hash_array_row(np.asfortranarray(a))  # layout-independent
    big = np.arange(48, dtype=np.uint8).reshape(2, 6, 4)
    assert hash_array_row(big[:, ::2]) == hash_array_row(np.ascontiguousarray(big[:, ::2]))
    assert hash_array_row(a) != hash_array_row(a.astype(np.int8))  # same bytes, dtype differs
    assert hash_array_row(a) != hash_array_row(a.reshape(3, 2, 4))  # same bytes, shape differs
    assert hash_array_row(a) != hash_array_row(a.ravel())
    b = a.copy()
    b[1, 2, 3] += 1
    assert hash_array_row(a) != hash_array_row(b)
    assert hash_array_row(a) != hash_bytes(a.tobytes())
    with pytest.raises(ValueError):
        hash_array_row(np.array([object()]))


# --- configuration --------------------------------------------------------------------
def test_resolve_cache_dir(monkeypatch, tmp_path):
    import platformdirs

    default = Path(platformdirs.user_cache_dir("skanimal")) / "features"
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_cache_dir(True) == default
    assert resolve_cache_dir(np.True_) == default
    assert resolve_cache_dir(False) is None
    assert resolve_cache_dir(None) is None
    assert resolve_cache_dir(tmp_path) == tmp_path
    assert resolve_cache_dir(str(tmp_path)) == tmp_path
    assert resolve_cache_dir("~/feat") == Path.home() / "feat"

    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_cache_dir(True) == default
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert resolve_cache_dir(True) == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"  # param wins
    assert resolve_cache_dir(False) is None
    for off in ["0", "false", "OFF", "No", "none"]:
        monkeypatch.setenv(ENV_VAR, off)
        assert resolve_cache_dir(True) is None, off


@pytest.mark.parametrize("bad", [1, 0, 2.5, "", b"/tmp", ["dir"], object()])
def test_resolve_cache_dir_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="cache"):
        resolve_cache_dir(bad)


def test_fingerprint_stable_and_sensitive(monkeypatch):
    base = dict(backbone="vgg16", weights="imagenet", image_size=(224, 224),
                pooling=None, preprocessing="caffe", precision="float32")
    fp = make_fingerprint(**base)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert make_fingerprint(**dict(reversed(list(base.items())))) == fp  # order-free
    assert make_fingerprint(**{**base, "image_size": [224, 224]}) == fp  # tuple == list
    assert make_fingerprint(**{**base, "image_size": (np.int64(224), 224)}) == fp
    variants = [{"backbone": "resnet50"}, {"weights": "sha256-abc"}, {"image_size": (299, 299)},
                {"pooling": "avg"}, {"preprocessing": "tf"}, {"precision": "float16"},
                {"extra": 1}]
    fps = {make_fingerprint(**{**base, **v}) for v in variants}
    assert fp not in fps and len(fps) == len(variants)
    monkeypatch.setattr(cache_mod, "FEATURE_FORMAT_VERSION", FEATURE_FORMAT_VERSION + 1)
    assert make_fingerprint(**base) != fp
    with pytest.raises(TypeError):
        make_fingerprint(weights=object())


@pytest.mark.slow
def test_fingerprint_stable_across_processes():
    # A fresh interpreter with a different hash seed must agree.
    code = "print(__import__('skanimal.cache').cache.make_fingerprint(b='vgg16', s=(1, 2)))"
    out = subprocess.run([sys.executable, "-c", CHILD_PRELUDE + code], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == make_fingerprint(s=(1, 2), b="vgg16")


# --- concurrency ----------------------------------------------------------------------
def test_concurrent_threads_same_key(tmp_path):
    store = FeatureCache(tmp_path, FP)
    expected = features(7, 20000)
    seen_bad = []

    def work(_):
        for _ in range(20):
            store.put(key_of(7), expected)
            got = store.get(key_of(7))
            if got is None or got.tobytes() != expected.tobytes():
                seen_bad.append(got)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert not seen_bad
    assert store.enabled
    assert store.get(key_of(7)).tobytes() == expected.tobytes()
    assert temp_files(tmp_path) == []


@pytest.mark.slow
def test_concurrent_processes_same_key(tmp_path):
    expected = features(9, 50000)
    code = """
        d, fp, key = sys.argv[1:4]
        expected = np.random.default_rng(9).standard_normal(50000).astype(np.float32)
        store = FeatureCache(d, fp)
        bad = 0
        for _ in range(40):
            store.put(key, expected)
            got = store.get(key)
            bad += got is None or got.tobytes() != expected.tobytes()
        assert store.enabled
        print("BAD", bad)
    """
    children = [run_child(code, tmp_path, FP, key_of(9), stdout=subprocess.PIPE, text=True)
                for _ in range(4)]
    outputs = [c.communicate(timeout=60)[0] for c in children]
    assert all(c.returncode == 0 for c in children), outputs
    assert outputs == ["BAD 0\n"] * 4
    assert FeatureCache(tmp_path, FP).get(key_of(9)).tobytes() == expected.tobytes()
    assert temp_files(tmp_path) == []


def test_put_survives_concurrent_clear(tmp_path):
    # clear_cache removes the shard directory the instance believes exists.
    store = FeatureCache(tmp_path, FP)
    k1 = key_of(0)
    k2 = next(key_of(i) for i in range(1, 10000) if key_of(i)[:2] == k1[:2])
    store.put(k1, features(0))
    assert clear_cache(tmp_path) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        store.put(k2, features(1))
    assert store.enabled and np.array_equal(store.get(k2), features(1))


# --- integrity ------------------------------------------------------------------------
def _flip_payload(p):
    b = bytearray(p.read_bytes())
    b[-7] ^= 0x10
    p.write_bytes(bytes(b))


def _flip_digest(p):
    b = bytearray(p.read_bytes())
    b[40] ^= 0x01
    p.write_bytes(bytes(b))


def _huge_length(p):
    b = bytearray(p.read_bytes())
    b[16:32] = ((1 << 60).to_bytes(8, "little")) * 2  # count and payload length fields
    p.write_bytes(bytes(b))


def _bad_magic(p):
    b = bytearray(p.read_bytes())
    b[0:8] = b"\x93NUMPY\x01\x00"
    p.write_bytes(bytes(b))


@pytest.mark.parametrize("damage", [
    pytest.param(_flip_payload, id="flipped-payload-byte"),
    pytest.param(_flip_digest, id="flipped-digest-byte"),
    pytest.param(_huge_length, id="huge-length-field"),
    pytest.param(_bad_magic, id="foreign-magic"),
    pytest.param(lambda p: p.write_bytes(p.read_bytes()[:-1]), id="truncated-1-byte"),
    pytest.param(lambda p: p.write_bytes(p.read_bytes()[:30]), id="truncated-header"),
    pytest.param(lambda p: p.write_bytes(p.read_bytes() + b"\0"), id="trailing-byte"),
    pytest.param(lambda p: p.write_bytes(os.urandom(4096)), id="garbage"),
    pytest.param(lambda p: p.write_bytes(b""), id="zero-bytes"),
])
def test_damaged_entry_is_a_miss_and_put_repairs_it(tmp_path, damage):
    store = FeatureCache(tmp_path, FP)
    store.put(key_of(0), features(0))
    store.put(key_of(1), features(1))
    path = store.entry_path(key_of(0))
    damage(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # damage is not a broken directory
        assert store.get(key_of(0)) is None
        assert store.get(key_of(0)) is None
    assert not path.exists()  # discarded on read
    assert np.array_equal(store.get(key_of(1)), features(1))  # neighbours unaffected
    store.put(key_of(0), features(0))
    assert np.array_equal(store.get(key_of(0)), features(0))
    assert store.enabled


def test_garbage_file_at_entry_path_before_any_put(tmp_path):
    store = FeatureCache(tmp_path, FP)
    path = store.entry_path(key_of(0))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a feature file")
    assert store.get(key_of(0)) is None
    store.put(key_of(0), features(0))
    assert np.array_equal(store.get(key_of(0)), features(0))


@pytest.mark.skipif(not IS_POSIX, reason="needs SIGKILL")
@pytest.mark.slow
def test_writer_killed_mid_write_leaves_no_valid_entry(tmp_path):
    # The child completes the data write, then freezes before os.replace (fsync patched
    # to block) and is SIGKILLed in that state.
    code = """
        d, fp, key = sys.argv[1:4]
        real_fsync = os.fsync
        def frozen_fsync(fd):
            real_fsync(fd)
            print("PAUSED", flush=True)
            time.sleep(120)
        os.fsync = frozen_fsync
        FeatureCache(d, fp).put(key, np.ones(100000, dtype=np.float32))
    """
    key = key_of(0)
    child = run_child(code, tmp_path, FP, key, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "PAUSED"
        store = FeatureCache(tmp_path, FP)
        assert store.get(key) is None  # fully written, but not yet published
        assert len(temp_files(tmp_path)) == 1
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    store = FeatureCache(tmp_path, FP)
    assert store.get(key) is None
    info = cache_info(tmp_path)
    assert info["entries"] == 0 and info["temp_files"] == 1 and info["temp_bytes"] > 0
    store.put(key, features(0))
    assert np.array_equal(store.get(key), features(0))
    assert clear_cache(tmp_path) == 1
    assert temp_files(tmp_path) == [] and cache_info(tmp_path)["entries"] == 0


@pytest.mark.skipif(not IS_POSIX, reason="needs SIGKILL")
@pytest.mark.slow
def test_writer_killed_at_random_time_never_corrupts(tmp_path):
    # The child rewrites a large entry in a loop (iteration i stores all-i values); it is
    # killed at an arbitrary moment, most likely in the middle of writing a temp file.
    n = 2_000_000
    code = """
        d, fp, key, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        store = FeatureCache(d, fp)
        i = 0
        while True:
            store.put(key, np.full(n, i, dtype=np.float32))
            if i == 0:
                print("WROTE", flush=True)
            i += 1
    """
    key = key_of(0)
    rng = random.Random()
    for _ in range(2):
        child = run_child(code, tmp_path, FP, key, n, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "WROTE"
            time.sleep(rng.uniform(0.02, 0.3))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
            child.stdout.close()
        got = FeatureCache(tmp_path, FP).get(key)
        # The first write completed, so a valid (complete, uniform) entry must be there.
        assert got is not None and got.shape == (n,)
        assert np.all(got == got[0])
    store = FeatureCache(tmp_path, FP)
    store.put(key, features(0))
    assert np.array_equal(store.get(key), features(0))


# --- unusable directories -------------------------------------------------------------
def _exercise(store):
    """Use every method; return the CacheWarnings emitted. Must not raise."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        store.put(key_of(0), features(0))
        store.put_many({key_of(i): features(i) for i in range(1, 5)})
        results = [store.get(key_of(0))] + store.get_many([key_of(i) for i in range(5)])
    assert all(r is None for r in results)
    assert not store.enabled
    return cache_warnings(records)


def test_directory_path_is_a_regular_file(tmp_path):
    blocker = tmp_path / "cachedir"
    blocker.write_bytes(b"user data")
    store = FeatureCache(blocker, FP)
    (w,) = _exercise(store)
    assert str(blocker) in str(w.message)
    assert blocker.read_bytes() == b"user data"
    # Each instance warns once on its own.
    assert len(_exercise(FeatureCache(blocker, FP))) == 1


def test_get_on_unusable_directory_warns_once(tmp_path):
    blocker = tmp_path / "cachedir"
    blocker.write_bytes(b"")
    store = FeatureCache(blocker, FP)
    with pytest.warns(CacheWarning, match="cachedir") as records:
        assert store.get(key_of(0)) is None
        assert store.get(key_of(1)) is None
    assert len(cache_warnings(records)) == 1


@pytest.mark.parametrize("target, err", [
    ("replace", errno.EROFS),
    ("fsync", errno.ENOSPC),
    ("makedirs", errno.EACCES),
])
def test_os_errors_disable_cache_with_one_warning(tmp_path, monkeypatch, target, err):
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    store = FeatureCache(tmp_path, FP)
    monkeypatch.setattr(os, target, fail)
    (w,) = _exercise(store)
    assert str(tmp_path) in str(w.message) and os.strerror(err) in str(w.message)
    monkeypatch.undo()
    assert temp_files(tmp_path) == []  # the failed write cleaned up after itself
    assert cache_info(tmp_path)["entries"] == 0


@pytest.mark.skipif(not IS_POSIX or os.geteuid() == 0,
                    reason="chmod does not stop root from writing")
def test_read_only_directory_via_chmod(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (w,) = _exercise(FeatureCache(ro, FP))
        assert "Permission" in str(w.message)
    finally:
        ro.chmod(0o755)


# --- maintenance ----------------------------------------------------------------------
def test_cache_info_and_clear_cache_spare_user_files(tmp_path):
    a, b = FeatureCache(tmp_path, FP), FeatureCache(tmp_path, FP2)
    for i in range(3):
        a.put(key_of(i), features(i, 100))
    for i in range(2):
        b.put(key_of(i), features(i, 50))
    info = cache_info(tmp_path)
    assert info["directory"] == str(tmp_path)
    assert info["entries"] == 5 and info["fingerprints"] == 2
    assert info["bytes"] == 3 * (64 + 400) + 2 * (64 + 200)
    assert info["temp_files"] == 0

    # Files a user might have put in the directory, some in cache-looking places.
    user_files = {
        tmp_path / "notes.txt": b"keep me",
        tmp_path / FP[:16] / "README": b"mine",
        tmp_path / FP[:16] / key_of(0)[:2] / "photo.jpg": b"jpeg",
        tmp_path / "photos" / key_of(0)[:2] / (key_of(0) + ".skfeat"): b"x",
        tmp_path / "0123456789abcdef" / "zz" / (key_of(0) + ".skfeat"): b"y",
    }
    for p, content in user_files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    assert cache_info(tmp_path)["entries"] == 5

    assert clear_cache(tmp_path) == 5
    assert cache_info(tmp_path)["entries"] == 0
    assert cache_info(tmp_path)["bytes"] == 0
    assert a.get(key_of(0)) is None and b.get(key_of(1)) is None
    for p, content in user_files.items():
        assert p.read_bytes() == content
    assert not (tmp_path / FP2[:16]).exists()  # emptied cache dirs are removed
    assert tmp_path.exists()
    assert clear_cache(tmp_path) == 0
    # Still usable afterwards.
    a.put(key_of(0), features(0, 100))
    assert np.array_equal(a.get(key_of(0)), features(0, 100))


def test_maintenance_on_missing_or_default_directory(tmp_path, monkeypatch):
    missing = tmp_path / "missing"
    assert cache_info(missing) == {"directory": str(missing), "entries": 0, "bytes": 0,
                                   "fingerprints": 0, "temp_files": 0, "temp_bytes": 0,
                                   "compiled_files": 0, "compiled_bytes": 0}
    assert clear_cache(missing) == 0
    assert not missing.exists()

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    FeatureCache(resolve_cache_dir(True), FP).put(key_of(0), features(0))
    assert cache_info()["directory"] == str(tmp_path / "env")
    assert cache_info()["entries"] == 1
    assert clear_cache() == 1
    assert cache_info()["entries"] == 0


def test_feature_shape_record_round_trip_damage_and_clear(tmp_path):
    fp = make_fingerprint(backbone="vgg16", image_size=(32, 32))
    store = FeatureCache(tmp_path, fp)
    assert store.get_feature_shape() is None
    store.put_feature_shape((7, 7, 512))
    assert FeatureCache(tmp_path, fp).get_feature_shape() == (7, 7, 512)
    other = make_fingerprint(backbone="vgg16", image_size=(64, 64))
    assert FeatureCache(tmp_path, other).get_feature_shape() is None
    assert cache_info(tmp_path)["entries"] == 0  # a shape record is not a feature entry
    record = next(tmp_path.rglob("feature_shape.json"))
    record.write_text("{ damaged")
    assert FeatureCache(tmp_path, fp).get_feature_shape() is None
    store.put_feature_shape((7, 7, 512))
    store.put("ab" * 32, np.ones(3, dtype=np.float32))
    assert clear_cache(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []  # the record and its directory are gone too


@pytest.mark.skipif(not IS_POSIX, reason="needs SIGKILL")
def test_clear_cache_removes_a_killed_shape_writers_temporary_files(tmp_path):
    # The child has written the configuration's feature-shape record to its temporary
    # file, then freezes before the rename (fsync patched to block) and is SIGKILLed.
    fp = make_fingerprint(backbone="vgg16", image_size=(32, 32))
    code = """
        d, fp = sys.argv[1:3]
        real_fsync = os.fsync
        def frozen_fsync(fd):
            real_fsync(fd)
            print("PAUSED", flush=True)
            time.sleep(120)
        os.fsync = frozen_fsync
        FeatureCache(d, fp).put_feature_shape((7, 7, 512))
    """
    child = run_child(code, tmp_path, fp, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "PAUSED"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    config_dir = tmp_path / fp[:16]
    (leftover,) = temp_files(tmp_path)
    assert leftover.parent == config_dir and leftover.name.startswith(fileio.TMP_PREFIX)
    assert FeatureCache(tmp_path, fp).get_feature_shape() is None  # never published
    # A leftover of an older skanimal, which named these files differently.
    (config_dir / ".skanimal-tmp-shape-1234-00ff00ff00ff00ff").write_bytes(b'{"fing')
    user_file = config_dir / "notes.txt"
    user_file.write_bytes(b"mine")
    info = cache_info(tmp_path)
    assert info["entries"] == 0 and info["temp_files"] == 2 and info["temp_bytes"] > 0
    assert clear_cache(tmp_path) == 0  # temporary files are not counted as entries
    assert temp_files(tmp_path) == [] and cache_info(tmp_path)["temp_files"] == 0
    assert sorted(p.name for p in config_dir.iterdir()) == ["notes.txt"]  # the user's stays


def test_cache_files_are_written_by_fileio_with_umask_permissions(tmp_path, monkeypatch):
    calls = []
    real = fileio.atomic_write

    def spy(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "atomic_write", spy)
    store = FeatureCache(tmp_path, FP)
    store.put(key_of(0), features(0))
    store.put_feature_shape((1, 1, 512))
    assert calls == [key_of(0) + ".skfeat", "feature_shape.json"]
    if IS_POSIX:
        umask = os.umask(0)
        os.umask(umask)
        assert store.entry_path(key_of(0)).stat().st_mode & 0o777 == 0o666 & ~umask


def test_fingerprint_is_the_digest_of_the_canonical_json():
    # The documented encoding: existing caches stay valid only while it does not change.
    config = dict(backbone="vgg16", weights="imagenet", image_size=(np.int64(224), 224),
                  pooling=None, preprocessing="caffe", precision="float32")
    canonical = json.dumps(
        {"feature_format_version": FEATURE_FORMAT_VERSION,
         "config": {**config, "image_size": [224, 224]}},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert make_fingerprint(**config) == hashlib.sha256(canonical.encode()).hexdigest()
    with pytest.raises(ValueError):
        make_fingerprint(scale=float("nan"))
    with pytest.raises(ValueError):
        make_fingerprint(scale=[np.float32("inf")])
    for unknown in (b"bytes", 1 + 2j, object()):
        with pytest.raises(TypeError):
            make_fingerprint(value=unknown)
