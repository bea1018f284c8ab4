# Copyright (c) monai_unet2015 contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The ``connectivity`` argument of connected components: the one check of it in the package.

The convention is SciPy's and scikit-image's: ``connectivity`` ``c`` in ``[1, ndim]`` makes two pixels neighbours
when at most ``c`` of their coordinates differ by one, i.e. the structuring element
``scipy.ndimage.generate_binary_structure(ndim, c)``: 1 = faces only (4-neighbourhood in 2D, 6 in 3D), ``ndim``
= full (8 / 26). The instance transforms (``None`` meaning full), the weight map and the ISBI 2012 metrics
check it here, once, where the user passes it; the functions behind them build the structuring element with
``generate_binary_structure`` directly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_connectivity"]


def check_connectivity(
    connectivity: int | None, ndim: int | None = None, func: str | None = None, allow_none: bool = True
) -> int | None:
    """Check a SciPy-style ``connectivity`` and return it as an ``int`` (``None`` resolved to ``ndim``).

    Args:
        connectivity: the value to check: an integer in ``[1, ndim]``, or ``None`` (full neighbourhood) when
            ``allow_none``.
        ndim: the number of spatial dimensions it applies to; ``None`` where they are not known yet (a
            transform's constructor): then any integer ``>= 1`` passes and ``None`` stays ``None``.
        func: the name of the public function or class to put in front of the message, if any.
        allow_none: whether ``None`` (= ``ndim``, the full neighbourhood) is accepted.

    Raises:
        ValueError: when ``connectivity`` is not an integer (bools included) in the range, naming the range,
            what its ends mean and the value.

    Examples::

        >>> check_connectivity(None, 3), check_connectivity(1, 2), check_connectivity(2)
        (3, 1, 2)
        >>> check_connectivity(3, 2, "rand_error")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: rand_error: connectivity must be an integer in [1, 2] for 2D images (1: faces only, ...), got 3.
    """
    if connectivity is None and allow_none:
        return ndim
    is_int = isinstance(connectivity, (int, np.integer)) and not isinstance(connectivity, bool)
    if is_int and connectivity >= 1 and (ndim is None or connectivity <= ndim):  # type: ignore[operator]
        return int(connectivity)  # type: ignore[arg-type]
    where = f"{func}: " if func else ""
    if ndim is None:
        range_text = "an integer >= 1 (1: faces only, up to the number of spatial dimensions: full)"
        raise ValueError(
            f"{where}connectivity must be {'None or ' if allow_none else ''}{range_text}, got {connectivity!r}."
        )
    raise ValueError(
        f"{where}connectivity must be an integer in [1, {ndim}] for {ndim}D images (1: faces only, the "
        f"{2 * ndim}-neighbourhood; {ndim}: full, the {3**ndim - 1}-neighbourhood)"
        f"{f' or None (= {ndim})' if allow_none else ''}, got {connectivity!r}."
    )
