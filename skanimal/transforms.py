"""Pure image transformations for augmentation: rotation, shift, zoom, shear, flips, brightness.

:class:`ImageAugmentation` is a small, frozen (hashable, picklable) description of random
transformations; :meth:`~ImageAugmentation.apply` turns one ``uint8`` image into one
augmented image, deterministically for a given seed. Nothing here reads files, caches or
fits anything: :mod:`skanimal.augmentation` builds augmented training sets on top of it.

This module depends on NumPy and Pillow only.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .compat import Interval, validate_parameter_constraints

__all__ = ["AUGMENTATION_VERSION", "ImageAugmentation", "check_seed"]

#: Version of the augmentation *algorithm*. It is part of :meth:`ImageAugmentation.describe`
#: and therefore of the cache keys of augmented images: bump it whenever :meth:`apply`
#: changes its output for given parameters and seed, so that stale features stop being found.
AUGMENTATION_VERSION = 1

_RESAMPLE = Image.Resampling.BILINEAR
_SEED_LIMIT = 2**63  # seeds are non-negative and below this


def check_seed(seed, name="seed"):
    """Validate an augmentation seed.

    Parameters
    ----------
    seed : int
        The seed to check.
    name : str, default="seed"
        How the value is called in the error message.

    Returns
    -------
    int
        ``seed`` as a Python int.

    Raises
    ------
    TypeError
        If ``seed`` is not an integer (``bool`` is not accepted).
    ValueError
        If ``seed`` is not in ``[0, 2**63)``.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer, got {seed!r}.")
    seed = int(seed)
    if not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"{name} must be in [0, 2**63), got {seed}.")
    return seed


# ------------------------------------------------------------------------ ImageAugmentation


@dataclass(frozen=True)
class ImageAugmentation:
    """Random geometric and photometric transformations of an image.

    A frozen description (hashable, comparable, picklable): it holds the *ranges* of the
    transformations; :meth:`apply` draws one transformation from them with a given seed.
    Every range is symmetric around "no change", and a range of 0 (or ``False`` for a
    flip) disables that transformation, so ``ImageAugmentation(rotation=0, shift=0,
    zoom=0, horizontal_flip=False)`` is the identity.

    Parameters
    ----------
    rotation : float, default=15.0
        Maximum rotation in degrees (in [0, 180]); the angle is drawn uniformly in
        ``[-rotation, rotation]``.
    horizontal_flip : bool, default=True
        Mirror left-right with probability 1/2.
    vertical_flip : bool, default=False
        Flip upside down with probability 1/2 (rarely right for photos of animals).
    shift : float, default=0.1
        Maximum translation as a fraction of the width (horizontally) and of the height
        (vertically), in [0, 1); each is drawn uniformly in ``[-shift, shift]``.
    zoom : float, default=0.1
        Maximum relative change of scale, in [0, 1); the (isotropic) scale factor is drawn
        uniformly in ``[1 - zoom, 1 + zoom]`` (> 1 zooms in).
    shear : float, default=0.0
        Maximum shear angle in degrees, in [0, 90); drawn uniformly in ``[-shear, shear]``.
    brightness : float, default=0.0
        Maximum relative change of brightness, in [0, 1); the factor is drawn uniformly
        in ``[1 - brightness, 1 + brightness]`` (:class:`PIL.ImageEnhance.Brightness`).

    See Also
    --------
    AugmentedClassifier : Trains a classifier on augmented copies of its training images.

    Notes
    -----
    Rotation, zoom, shear and shift are combined into one affine map about the image
    centre and applied in a single bilinear resampling (:meth:`PIL.Image.Image.transform`),
    then the flips (:func:`PIL.ImageOps.mirror`, :func:`PIL.ImageOps.flip`), then the
    brightness change. Areas the transformation brings in from outside the image are
    filled by mirror reflection of the image (like ``numpy.pad(mode="symmetric")``, or
    Keras' ``fill_mode="reflect"``), never with black, so no artificial border appears.

    The output depends only on the pixels, the parameters and the seed (and on
    :data:`AUGMENTATION_VERSION`), so :meth:`describe` plus the seed identify an augmented
    image for the feature cache. Inside :class:`~skanimal.BottleneckFeatures` images are
    augmented *after* being resized to the backbone's input size; ``shift`` is relative,
    so the transformation is the same at any size.

    Examples
    --------
    >>> import numpy as np
    >>> augment = ImageAugmentation(rotation=20, zoom=0.2)
    >>> pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    >>> augment.apply(pixels, seed=7).shape
    (32, 32, 3)
    >>> augment == ImageAugmentation(rotation=20.0, zoom=0.2)
    True
    """

    rotation: float = 15.0
    horizontal_flip: bool = True
    vertical_flip: bool = False
    shift: float = 0.1
    zoom: float = 0.1
    shear: float = 0.0
    brightness: float = 0.0

    # The one validation (as estimators' parameters); `bool` is never accepted as a number.
    _parameter_constraints = {
        "rotation": [Interval(numbers.Real, 0, 180, closed="both")],
        "horizontal_flip": ["boolean"],
        "vertical_flip": ["boolean"],
        "shift": [Interval(numbers.Real, 0, 1, closed="left")],
        "zoom": [Interval(numbers.Real, 0, 1, closed="left")],
        "shear": [Interval(numbers.Real, 0, 90, closed="left")],
        "brightness": [Interval(numbers.Real, 0, 1, closed="left")],
    }

    def __post_init__(self):
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        validate_parameter_constraints(self._parameter_constraints, values,
                                       caller_name=type(self).__name__)
        for name, value in values.items():
            # canonical: floats (ints and -0.0 normalised) and plain bools
            value = bool(value) if name.endswith("_flip") else float(value) + 0.0
            object.__setattr__(self, name, value)

    # -- identity ----------------------------------------------------------------------------
    @property
    def is_identity(self):
        """Whether :meth:`apply` returns its input unchanged for every seed.

        Returns
        -------
        bool
        """
        return not (
            self.rotation or self.shift or self.zoom or self.shear or self.brightness
            or self.horizontal_flip or self.vertical_flip
        )

    def describe(self):
        """A canonical string of the parameters, used in feature-cache keys.

        Returns
        -------
        str
            E.g. ``"ImageAugmentation/v1(rotation=15.0,horizontal_flip=True,...)"``; equal
            augmentations (``15`` and ``15.0`` alike) give equal strings, and the string
            changes with :data:`AUGMENTATION_VERSION`.
        """
        values = ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"ImageAugmentation/v{AUGMENTATION_VERSION}({values})"

    # -- drawing -----------------------------------------------------------------------------
    def _draw(self, seed):
        """The transformation drawn for ``seed``, as a dict of concrete values.

        Always draws the same eight numbers in the same order, so a parameter's draw does
        not depend on which other transformations are enabled.
        """
        u = np.random.default_rng(check_seed(seed)).random(8)

        def symmetric(x, r):
            return (2.0 * float(x) - 1.0) * r

        return {
            "angle": symmetric(u[0], self.rotation),
            "shear": symmetric(u[1], self.shear),
            "scale": 1.0 + symmetric(u[2], self.zoom),
            "tx": symmetric(u[3], self.shift),
            "ty": symmetric(u[4], self.shift),
            "mirror": self.horizontal_flip and bool(u[5] < 0.5),
            "flip": self.vertical_flip and bool(u[6] < 0.5),
            "brightness": 1.0 + symmetric(u[7], self.brightness),
        }

    def apply(self, pixels, seed):
        """Augment one image.

        Parameters
        ----------
        pixels : numpy.ndarray of shape (height, width, 3), dtype uint8
            An RGB image.
        seed : int
            Non-negative seed; the same seed (and parameters) always gives the same output,
            different seeds generally different ones.

        Returns
        -------
        numpy.ndarray of shape (height, width, 3), dtype uint8
            A new array (``pixels`` is never modified).

        Raises
        ------
        ValueError
            If ``pixels`` is not a ``(height, width, 3)`` ``uint8`` array.
        TypeError
            If ``seed`` is not a non-negative integer.
        """
        pixels = np.asarray(pixels)
        if pixels.ndim != 3 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8:
            raise ValueError(
                "ImageAugmentation.apply expects one RGB image of shape (height, width, 3) "
                f"and dtype uint8, got shape {pixels.shape} and dtype {pixels.dtype}."
            )
        if pixels.shape[0] == 0 or pixels.shape[1] == 0:
            raise ValueError(f"ImageAugmentation.apply: empty image of shape {pixels.shape}.")
        t = self._draw(seed)
        img = _affine(pixels, t["angle"], t["shear"], t["scale"], t["tx"], t["ty"])
        if t["mirror"]:
            img = ImageOps.mirror(img)
        if t["flip"]:
            img = ImageOps.flip(img)
        if t["brightness"] != 1.0:
            img = ImageEnhance.Brightness(img).enhance(t["brightness"])
        return np.array(img, dtype=np.uint8)  # a copy: never a view of the input


def _affine(pixels, angle, shear, scale, tx, ty):
    """``pixels`` rotated, sheared, scaled about the centre and shifted, as a PIL image.

    Reflection-pads the source by exactly what the inverse map reaches outside it, so the
    exposed areas are mirrored image content.
    """
    height, width = pixels.shape[:2]
    if angle == 0.0 and shear == 0.0 and scale == 1.0 and tx == 0.0 and ty == 0.0:
        return Image.fromarray(np.ascontiguousarray(pixels))
    theta = math.radians(angle)
    phi = math.radians(shear)
    rotate = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    shear_m = np.array([[1.0, math.tan(phi)], [0.0, 1.0]])
    forward = rotate @ shear_m @ np.diag([scale, scale])
    inverse = np.linalg.inv(forward)
    centre = np.array([width / 2.0, height / 2.0])
    shift = np.array([tx * width, ty * height])
    # Pillow's AFFINE data maps each output point to its input point: in = inverse @ out + offset.
    offset = centre - inverse @ (centre + shift)
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=float)
    reached = corners @ inverse.T + offset
    pad_left = max(0, math.ceil(-reached[:, 0].min())) + 1
    pad_right = max(0, math.ceil(reached[:, 0].max() - width)) + 1
    pad_top = max(0, math.ceil(-reached[:, 1].min())) + 1
    pad_bottom = max(0, math.ceil(reached[:, 1].max() - height)) + 1
    padded = np.pad(pixels, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)),
                    mode="symmetric")
    data = (inverse[0, 0], inverse[0, 1], offset[0] + pad_left,
            inverse[1, 0], inverse[1, 1], offset[1] + pad_top)
    source = Image.fromarray(padded)
    return source.transform((width, height), Image.Transform.AFFINE, data, resample=_RESAMPLE)
