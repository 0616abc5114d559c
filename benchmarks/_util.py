"""Shared helpers of the skanimal benchmarks: generated images, timing, peak memory, tables.

Only NumPy, Pillow and the standard library are imported at module level, so child
processes that measure start-up and memory are not charged for anything they do not use.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The shared real-photo development set (6 classes × 40 JPEGs, ≤ 256 px), when present.
ANIMALS_DEV = (REPO_ROOT / ".." / "shared" / "data" / "animals-dev").resolve()

#: Classes of the generated sets; each draws its own shape in its own hue.
CLASSES = ("circle", "square", "triangle", "cross")

MB = 1024 * 1024


# ------------------------------------------------------------------------------ images
class _FineNoise:
    """One big field of Gaussian pixel noise, sliced at random offsets per image.

    Drawing 36 M normal deviates per 12-megapixel image costs more than encoding it; slicing
    one shared field keeps every image's content (and so its cache key) different while the
    JPEG size stays that of a noisy photo.
    """

    def __init__(self, height, width, sigma, seed, margin=64):
        rng = np.random.default_rng(seed)
        self.margin = margin
        self.field = rng.normal(0.0, sigma, (height + margin, width + margin, 3)).astype(np.float32)

    def slice(self, rng, height, width):
        dy, dx = rng.integers(0, self.margin, size=2)
        return self.field[dy:dy + height, dx:dx + width]


def _photo_like(rng, width, height, class_index, noise):
    """A JPEG-realistic RGB image: smooth texture + detail + one class shape + sensor noise."""
    from PIL import Image, ImageDraw

    low = rng.integers(0, 256, (max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    image = Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC)
    mid = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    detail = Image.fromarray(mid).resize((width, height), Image.Resampling.BILINEAR)
    image = Image.blend(image, detail, 0.3)
    draw = ImageDraw.Draw(image)
    side = min(width, height)
    for _ in range(4):  # distractor blobs
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.03, 0.12) * side
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    # The class's shape, big, in the class's hue family.
    import colorsys

    hue = (class_index / len(CLASSES) + rng.uniform(-0.04, 0.04)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 1), rng.uniform(0.8, 1))
    colour = tuple(int(255 * c) for c in rgb)
    half = rng.uniform(0.25, 0.4) * side
    cx, cy = rng.uniform(half, width - half), rng.uniform(half, height - half)
    box = [cx - half, cy - half, cx + half, cy + half]
    name = CLASSES[class_index]
    if name == "circle":
        draw.ellipse(box, fill=colour)
    elif name == "square":
        draw.rectangle(box, fill=colour)
    elif name == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=colour)
    else:
        bar = half / 3
        draw.rectangle([cx - half, cy - bar, cx + half, cy + bar], fill=colour)
        draw.rectangle([cx - bar, cy - half, cx + bar, cy + half], fill=colour)
    pixels = np.asarray(image, dtype=np.float32) + noise.slice(rng, height, width)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_photo_folder(root, n_images, size=(256, 256), *, seed=0, quality=90, sigma=8.0):
    """Write ``n_images`` generated JPEGs of ``size`` (width, height), one folder per class.

    Returns the list of paths (sorted like :func:`skanimal.load_image_folder` sorts them), the
    list of class names of each, and the mean file size in bytes. At sigma=8 / quality 90 a
    256-px image is ~20 KB and a 4000×3000 one ~3.5 MB, like real photos.
    """
    width, height = size
    root = Path(root)
    noise = _FineNoise(height, width, sigma, seed=seed + 12345)
    rng = np.random.default_rng(seed)
    paths, labels, total = [], [], 0
    for i in range(n_images):
        k = i % len(CLASSES)
        folder = root / CLASSES[k]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{CLASSES[k]}_{i:04d}.jpg"
        _photo_like(rng, width, height, k, noise).save(path, "JPEG", quality=quality)
        total += path.stat().st_size
        paths.append(str(path))
        labels.append(CLASSES[k])
    order = sorted(range(n_images), key=lambda j: (labels[j], Path(paths[j]).name))
    return [paths[j] for j in order], [labels[j] for j in order], total / max(1, n_images)


# ------------------------------------------------------------------------------ timing
def median(values):
    return float(statistics.median(values))


def _system_busy_seconds():
    """CPU seconds all processes of the machine have used (user+nice+system+irq+softirq+steal).

    ``steal`` (the hypervisor running someone else on our vCPU) counts as busy: it is time
    taken away from the measurement just the same. NaN where /proc/stat is unavailable.
    """
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds():
    """CPU seconds of this process (all threads) plus its waited-for children."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Stopwatch:
    """``with Stopwatch() as sw: ...``; then

    * ``sw.seconds``: wall-clock seconds;
    * ``sw.cpu``: CPU seconds of this whole process (all threads), which hardly moves when
      other processes compete for the cores;
    * ``sw.foreign_share``: the share of the machine's CPU capacity (wall × cores) that
      *other* processes used meanwhile, from /proc/stat (children of this process, e.g. the
      benchmark's own subprocesses, count as ours). Above ~0.1 the wall time is disturbed.
    """

    def __enter__(self):
        self._busy0 = _system_busy_seconds()
        self._own0 = _own_cpu_seconds()
        self._c0 = time.process_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._c0
        own = _own_cpu_seconds() - self._own0
        foreign = _system_busy_seconds() - self._busy0 - own
        capacity = self.seconds * (os.cpu_count() or 1)
        self.foreign_share = max(0.0, foreign) / capacity if capacity > 0 else 0.0
        return False


def _proc_status_kb(field):
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb():
    """Peak resident set size of this process so far (or since :func:`reset_peak_rss`), MiB.

    Linux: ``VmHWM`` of /proc/self/status. Not ``getrusage(RUSAGE_SELF).ru_maxrss``: after
    fork + exec that reports the *parent's* RSS at fork time when it is larger (the kernel
    carries ``signal->maxrss`` over exec), which made a child of a 3 GB parent read 3 GB.
    Elsewhere: ru_maxrss.
    """
    hwm = _proc_status_kb("VmHWM")
    if hwm is not None:
        return hwm / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / MB


def reset_peak_rss():
    """Reset the peak-RSS mark to the current RSS (Linux ≥ 4.0); False when unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def current_rss_mb():
    rss = _proc_status_kb("VmRSS")
    return float("nan") if rss is None else rss / 1024


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def run_child(script, args, env=None, timeout=900):
    """Run ``python script args`` in a fresh process.

    Returns (wall seconds, the child's last JSON line as a dict, foreign CPU share meanwhile).
    """
    cmd = [sys.executable, str(script), *map(str, args)]
    with Stopwatch() as sw:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = sw.seconds
    if proc.returncode != 0:
        raise RuntimeError(
            f"child {' '.join(cmd)} failed with code {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"child {' '.join(cmd)} printed no result:\n{proc.stdout[-2000:]}")
    return wall, json.loads(lines[-1]), sw.foreign_share


# ------------------------------------------------------------------------------ table
def render_table(headers, rows):
    """Plain-text table with a header rule; cells are str()."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(len(headers))]
    def line(cells):
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(headers), "-+-".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)
