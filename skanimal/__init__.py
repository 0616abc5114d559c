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
from .augmentation import AugmentedClassifier, AugmentedImage  # noqa: E402
from .backbones import available_backbones, imagenet_available  # noqa: E402
from .cache import cache_info, clear_cache  # noqa: E402
from .classifier import ARTICLE_SETTINGS, BottleneckClassifier  # noqa: E402
from .datasets import (  # noqa: E402
    load_image_csv,
    load_image_folder,
    make_shapes,
    train_val_test_split,
)
from .exceptions import (  # noqa: E402
    CacheWarning,
    ImageFolderError,
    ImageLoadError,
    IncompatibleModelError,
    SkanimalError,
    SmallImageWarning,
    WeightsUnavailableError,
)
from .exporting import export  # noqa: E402
from .features import BottleneckFeatures  # noqa: E402
from .persistence import load, save  # noqa: E402
from .transforms import ImageAugmentation  # noqa: E402

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

