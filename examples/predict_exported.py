"""Predict photos with a model exported by ``skanimal export`` -- no skanimal needed.

``skanimal export`` copies this file into the export folder as ``predict.py``. It needs
Pillow, NumPy and the runtime of the export's format only (``keras``/``savedmodel``:
TensorFlow; ``tflite``: ai-edge-litert; ``onnx``: onnxruntime; ``openvino``: OpenVINO)::

    python predict.py PHOTO_OR_FOLDER [...] [--export DIR] [--top-k K]

It prints ``path,label_1,probability_1,...`` (CSV) for every photo. ``--export`` defaults to
the folder this script is in. Photos are decoded exactly as skanimal decodes them (see
``skanimal-export.json``): EXIF orientation applied, any mode to RGB, transparency composited
on white, stretched to the network's width x height with the named Pillow filter.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np
from PIL import ExifTags, Image

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# EXIF orientation -> the transposition that makes the photo upright
# (the table of PIL.ImageOps.exif_transpose).
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
             6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}


def _orientation(img):
    try:
        value = int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # corrupt EXIF: the photo is still readable
        return 1
    return value if value in TRANSPOSE else 1


def _to_l_rgb_or_rgba(img):
    mode = img.mode
    if mode.startswith("I"):  # 16/32-bit grey: round(v / 257)
        values = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))
    if mode == "F":  # float grey: [0, 1] scaled by 255, else taken as 0-255
        values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            values = values * 255.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if mode in ("La", "RGBa"):  # premultiplied alpha
        img = img.convert({"La": "LA", "RGBa": "RGBA"}[mode])
        mode = img.mode
    palette = getattr(img, "palette", None)
    if (mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            or (mode == "P" and palette is not None and palette.mode == "RGBA")):
        return img if mode == "RGBA" else img.convert("RGBA")
    if mode in ("L", "RGB"):
        return img
    return img.convert("L" if mode == "1" else "RGB")


def load_photo(path, height, width, resize="bilinear", reducing_gap=3.0):
    """Decode one photo to the network's input: ``(height, width, 3)`` uint8 RGB.

    Parameters
    ----------
    path : str
        The photo's file.
    height, width : int
        The network's input size.
    resize : str, default="bilinear"
        Pillow resampling filter, lower case (``input.resize`` of skanimal-export.json).
    reducing_gap : float, default=3.0
        Pillow's ``reducing_gap`` (``input.reducing_gap``).

    Returns
    -------
    ndarray of shape (height, width, 3), uint8
    """
    with Image.open(path) as img:
        orientation = _orientation(img)
        # Pillow sizes are (width, height) in the file's stored orientation.
        size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        img.draft("RGB", size)  # JPEG: decode at a reduced scale when far bigger
        img.load()
        out = _to_l_rgb_or_rgba(img)
        if out.size != size:
            out = out.resize(size, Image.Resampling[resize.upper()], reducing_gap=reducing_gap)
        if orientation in TRANSPOSE:
            out = out.transpose(TRANSPOSE[orientation])
        if out.mode == "RGBA":  # transparency on white, rounded
            rgba = np.asarray(out)
            alpha, rgb = rgba[..., 3:4].astype(np.uint16), rgba[..., :3].astype(np.uint16)
            return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
        return np.asarray(out.convert("RGB") if out.mode != "RGB" else out)


def load_network(export_dir):
    """The exported network and its description.

    Parameters
    ----------
    export_dir : str
        A folder written by ``skanimal export``.

    Returns
    -------
    run : callable
        ``run(pixels)``: ``(n, height, width, 3)`` uint8 -> ``(n, n_classes)`` float32
        probabilities, in the order of ``info["classes"]``.
    info : dict
        ``skanimal-export.json``.
    """
    with open(os.path.join(export_dir, "skanimal-export.json"), encoding="utf-8") as handle:
        info = json.load(handle)
    path = os.path.join(export_dir, info["model"])
    fmt = info["format"]
    if fmt == "keras":
        import keras

        model = keras.saving.load_model(path, compile=False)

        def run(pixels):
            return np.asarray(model(pixels, training=False))
    elif fmt == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(path).signatures["serving_default"]

        def run(pixels):
            return next(iter(serve(tf.constant(pixels)).values())).numpy()
    elif fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
        source = interpreter.get_input_details()[0]["index"]
        target = interpreter.get_output_details()[0]["index"]

        def run(pixels):
            interpreter.resize_tensor_input(source, pixels.shape)  # the batch size
            interpreter.allocate_tensors()
            interpreter.set_tensor(source, pixels)
            interpreter.invoke()
            return interpreter.get_tensor(target).copy()
    elif fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run(pixels):
            return session.run(None, {name: pixels})[0]
    elif fmt == "openvino":
        import openvino

        # float32 inference: OpenVINO would otherwise use bfloat16 on CPUs that have it.
        compiled = openvino.Core().compile_model(path, "CPU",
                                                 {"INFERENCE_PRECISION_HINT": "f32"})

        def run(pixels):
            return np.asarray(compiled(pixels)[0])
    else:
        raise ValueError(f"unknown format {fmt!r} in {export_dir}/skanimal-export.json")
    return run, info


def photos_in(inputs):
    """The files named, and the photos (by extension) found under the folders named."""
    found = []
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                found += [os.path.join(root, name) for name in sorted(files)
                          if name.lower().endswith(EXTENSIONS)]
        else:
            found.append(item)
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", metavar="PHOTO_OR_FOLDER")
    parser.add_argument("--export", default=os.path.dirname(os.path.abspath(__file__)),
                        metavar="DIR", help="the export folder; default: this script's")
    parser.add_argument("--top-k", type=int, default=1, metavar="K")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N")
    args = parser.parse_args(argv)
    run, info = load_network(args.export)
    shape = info["input"]
    classes = info["classes"]
    k = max(1, min(args.top_k, len(classes)))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path"] + [f"{column}_{rank}" for rank in range(1, k + 1)
                                for column in ("label", "probability")])
    paths, failed = photos_in(args.inputs), 0
    for start in range(0, len(paths), args.batch_size):
        batch, names = [], []
        for path in paths[start:start + args.batch_size]:
            try:
                batch.append(load_photo(path, shape["height"], shape["width"], shape["resize"],
                                        shape.get("reducing_gap", 3.0)))
                names.append(path)
            except Exception as exc:  # one unreadable photo does not stop the others
                print(f"cannot read {path}: {exc}", file=sys.stderr)
                failed += 1
        if not batch:
            continue
        proba = run(np.stack(batch))
        for path, row in zip(names, proba):
            best = np.argsort(-row)[:k]
            writer.writerow([path] + [v for i in best for v in (classes[i], f"{row[i]:.6f}")])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
