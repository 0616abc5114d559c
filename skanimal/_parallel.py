"""Helpers for running ``BottleneckFeatures.transform`` on joblib workers.

``BottleneckFeatures(n_jobs=...)`` splits ``X`` into chunks (:func:`chunk_bounds`) and sends
each through ``joblib.Parallel``; inside ``joblib.parallel_config(backend="dask")`` (or
``"ray"``, ``"spark"``...) the chunks run on a cluster's worker processes. In a worker
process, the chunk function first calls :func:`limit_tf_threads`, so that several workers on
one host do not each start one TensorFlow thread per core.

How many threads (``k``)
    Decided once per process, before TensorFlow initialises its runtime there (afterwards
    TensorFlow refuses to change it), by the first rule that applies:

    1. ``$SKANIMAL_TF_THREADS`` in this process's own environment (honoured in any
       process, the caller's included, as an explicit request);
    2. in a worker process, ``$SKANIMAL_TF_THREADS`` of the process that called
       ``transform`` (shipped with each task, because environment variables do not reach
       Dask workers that are already running);
    3. in a Dask worker: the usable cores of its host (:func:`joblib.cpu_count`, which
       honours CPU affinity and cgroup quotas) divided by the number of Dask workers on that
       host, as the scheduler reports them; at least 1;
    4. in another joblib worker process (loky, multiprocessing): ``$OMP_NUM_THREADS``, which
       joblib's loky backend sets to ``cpu_count() // n_jobs`` in its workers;
    5. otherwise TensorFlow is left alone (in particular in the calling process, unless
       rule 1 asks).

    TensorFlow's intra-op pool (the threads a convolution is split across) gets ``k``
    threads; the inter-op pool (independent ops, concurrent calls) gets one thread per task
    slot of the worker (Dask's ``nthreads``, else 1), at most ``k``.

Everything here is private API; :func:`worker_info` exists for tests and diagnostics.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import threading

__all__ = [
    "ENV_TF_THREADS",
    "chunk_bounds",
    "caller_tf_threads",
    "limit_tf_threads",
    "plan_tf_threads",
    "record_chunk",
    "worker_info",
]

#: Environment variable overriding the number of TensorFlow threads in worker processes.
ENV_TF_THREADS = "SKANIMAL_TF_THREADS"

#: Chunks aimed for per worker: enough to balance uneven workers, few enough to keep the
#: per-task overhead (and each worker's one-off backbone build) small.
CHUNKS_PER_WORKER = 4

#: Upper bound on the batches in one chunk, so one task's result stays small (16 batches of
#: 32 VGG16 images at 224 px without pooling is ~51 MB) and progress stays visible.
MAX_BATCHES_PER_CHUNK = 16

_LOCK = threading.Lock()
_STATE = {
    "pid": None,
    "chunks": 0,
    "images": 0,
    "tf_threads": None,  # (intra, inter) once set by skanimal
    "tf_threads_source": None,  # why, or why not; None until decided
}


# -- chunking ---------------------------------------------------------------------------------
def chunk_bounds(n_images, batch_size, n_workers, *, chunks_per_worker=CHUNKS_PER_WORKER,
                 max_batches_per_chunk=MAX_BATCHES_PER_CHUNK):
    """Split ``range(n_images)`` into contiguous chunks made of whole batches.

    Chunk boundaries fall on multiples of ``batch_size`` so that, without a cache, every
    forward pass sees exactly the batch the serial run would (identical features), and only
    the very last batch is short.

    Parameters
    ----------
    n_images, batch_size, n_workers : int
    chunks_per_worker, max_batches_per_chunk : int

    Returns
    -------
    list of (start, stop)
    """
    n_batches = max(1, math.ceil(n_images / batch_size))
    target = max(1, int(n_workers)) * chunks_per_worker
    per_chunk = min(max_batches_per_chunk, max(1, math.ceil(n_batches / target)))
    n_chunks = math.ceil(n_batches / per_chunk)
    # Spread the batches evenly over n_chunks (sizes differ by at most one batch).
    edges = [round(i * n_batches / n_chunks) for i in range(n_chunks + 1)]
    return [
        (edges[i] * batch_size, min(edges[i + 1] * batch_size, n_images))
        for i in range(n_chunks)
        if edges[i] < edges[i + 1]
    ]


# -- TensorFlow threads -----------------------------------------------------------------------
def _parse_threads(value, where):
    if value is None or str(value).strip() == "":
        return None
    try:
        threads = int(str(value).strip())
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{ENV_TF_THREADS}={value!r} ({where}) must be a positive integer.")
    return threads


def caller_tf_threads():
    """``$SKANIMAL_TF_THREADS`` of this (the calling) process, validated, or ``None``."""
    return _parse_threads(os.environ.get(ENV_TF_THREADS), "in the calling process")


def _dask_worker():
    # A Dask worker has imported distributed; importing it here to find out would cost a
    # plain process a second.
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:  # not inside a Dask task
        return None


def _dask_workers_on_host(worker):
    """Number of Dask workers on this worker's host, per the scheduler, or ``None``."""
    try:
        from distributed import get_client

        workers = get_client().scheduler_info(n_workers=-1)["workers"]
    except Exception:  # noqa: BLE001 - any failure falls back to the worker's own nthreads
        return None
    me = workers.get(worker.address)
    if me is None:
        return None
    return sum(1 for info in workers.values() if info.get("host") == me.get("host")) or None


def plan_tf_threads(caller_pid=None, hint=None):
    """Decide TensorFlow's thread counts for this process (see the module notes).

    Parameters
    ----------
    caller_pid : int, optional
        Process id of the process that called ``transform``; a different one marks this
        process as a worker.
    hint : int, optional
        ``$SKANIMAL_TF_THREADS`` of the calling process.

    Returns
    -------
    (intra, inter, source) or (None, None, source)
        ``source`` says which rule decided.
    """
    from joblib import cpu_count

    worker = _dask_worker()
    slots = max(1, int(getattr(getattr(worker, "state", None), "nthreads", 1) or 1))
    own = _parse_threads(os.environ.get(ENV_TF_THREADS), "in this process's environment")
    if own is not None:  # an explicit request is honoured in any process
        return own, max(1, min(own, slots)), f"{ENV_TF_THREADS}={own} in this process"
    in_worker_process = worker is not None or (
        caller_pid is not None and caller_pid != os.getpid()
    ) or multiprocessing.current_process().name.startswith("LokyProcess")
    if not in_worker_process:
        return None, None, "calling process: left alone"
    if hint is not None:
        k, source = int(hint), f"{ENV_TF_THREADS}={hint} in the calling process"
    elif worker is not None:
        cores = cpu_count()
        n_local = _dask_workers_on_host(worker)
        if n_local is None:
            k, source = slots, f"Dask worker nthreads={slots}"
        else:
            k = max(1, cores // n_local)
            source = f"{cores} cores / {n_local} Dask workers on this host"
    else:
        omp = os.environ.get("OMP_NUM_THREADS", "")
        if not omp.strip().isdigit() or int(omp) < 1:
            return None, None, "worker process without OMP_NUM_THREADS: left alone"
        k, source = int(omp), f"OMP_NUM_THREADS={int(omp)} (set by the joblib backend)"
    return k, max(1, min(k, slots)), source


def limit_tf_threads(caller_pid=None, hint=None):
    """Limit TensorFlow's thread pools in a worker process, once per process.

    Cheap after the first call. Meant to run just before skanimal's first use of
    TensorFlow in a process (the chunk function calls it; building a backbone or fitting a
    head may too): once TensorFlow has initialised in a process its pools cannot change, so
    the limit is then skipped and this is recorded in :func:`worker_info` (never an error:
    it costs speed, not correctness).

    Parameters
    ----------
    caller_pid, hint
        See :func:`plan_tf_threads`.

    Returns
    -------
    dict
        :func:`worker_info`.
    """
    with _LOCK:
        if _STATE["tf_threads_source"] is None:
            intra, inter, source = plan_tf_threads(caller_pid, hint)
            if intra is not None:
                import tensorflow as tf

                try:
                    tf.config.threading.set_intra_op_parallelism_threads(intra)
                    tf.config.threading.set_inter_op_parallelism_threads(inter)
                    _STATE["tf_threads"] = (intra, inter)
                except RuntimeError:
                    source = f"not applied, TensorFlow was already initialised ({source})"
            _STATE["tf_threads_source"] = source
    return worker_info()


def record_chunk(n_images):
    """Count one extracted chunk in this process (for :func:`worker_info`)."""
    with _LOCK:
        _STATE["chunks"] += 1
        _STATE["images"] += int(n_images)


def worker_info():
    """What skanimal did in this process.

    Returns
    -------
    dict
        ``pid``; ``chunks`` and ``images`` extracted by the chunk function here;
        ``tf_threads``: ``(intra, inter)`` set by skanimal or ``None``;
        ``tf_threads_source``: which rule decided (``None`` before the first chunk).
    """
    with _LOCK:
        return {**_STATE, "pid": os.getpid()}
