"""skanimal: labeled image classifiers by transfer learning, the scikit-learn way.

>>> from sklearn.pipeline import make_pipeline
>>> from skanimal import BottleneckFeatures, BottleneckClassifier, load_image_folder
>>> data = load_image_folder("photos/train")                       # doctest: +SKIP
>>> pipe = make_pipeline(BottleneckFeatures(), BottleneckClassifier())
>>> pipe.fit(data.paths, data.target)                               # doctest: +SKIP
"""

import os as _os

# TensorFlow's C++ start-up chatter is noise for users of a scikit-learn API. This silences
# most of it; skanimal._tfstartup filters the notices current releases log regardless.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ._version import __version__  # noqa: E402
from .exceptions import (  # noqa: E402
    CacheWarning,
    ImageFolderError,
    ImageLoadError,
    IncompatibleModelError,
    SkanimalError,
    SmallImageWarning,
    WeightsUnavailableError,
)

# The estimators and helpers are imported on first use (PEP 562): they pull in scikit-learn,
# SciPy and pandas, which a command that only predicts or sorts does not all need, and
# ``import skanimal`` stays as light as its exceptions.
_LAZY = {
    "AugmentedClassifier": "augmentation",
    "AugmentedImage": "augmentation",
    "available_backbones": "backbones",
    "imagenet_available": "backbones",
    "cache_info": "cache",
    "clear_cache": "cache",
    "ARTICLE_SETTINGS": "classifier",
    "BottleneckClassifier": "classifier",
    "load_image_csv": "datasets",
    "load_image_folder": "datasets",
    "make_shapes": "datasets",
    "train_val_test_split": "datasets",
    "export": "exporting",
    "BottleneckFeatures": "features",
    "load": "persistence",
    "save": "persistence",
    "ImageAugmentation": "transforms",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "__version__",
    "BottleneckFeatures",
    "BottleneckClassifier",
    "ARTICLE_SETTINGS",
    "AugmentedClassifier",
    "AugmentedImage",
    "ImageAugmentation",
    "load_image_folder",
    "load_image_csv",
    "make_shapes",
    "train_val_test_split",
    "available_backbones",
    "imagenet_available",
    "save",
    "load",
    "export",
    "cache_info",
    "clear_cache",
    "SkanimalError",
    "ImageLoadError",
    "ImageFolderError",
    "WeightsUnavailableError",
    "IncompatibleModelError",
    "CacheWarning",
    "SmallImageWarning",
]

