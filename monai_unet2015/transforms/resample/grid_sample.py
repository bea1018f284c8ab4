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

"""``torch.nn.functional.grid_sample`` that also uses the CPU threads for a single image.

ATen's CPU ``grid_sample`` kernels parallelise over the batch only, so one image runs on one core.
:py:func:`threaded_grid_sample` splits the output rows of a single image into one block per intra-op thread and
passes the blocks as a batch (the input repeated); the result is identical, bit for bit.

Why not MONAI's ``monai.transforms.Resample``: with ``norm_coords=False, align_corners=True`` and the grid in its
channel-first layout it computes the same values (same kernel, tested), but it runs the kernel on one core,
copies the grid into grid_sample's layout on every call, wraps the output in a ``MetaTensor``, always returns
float32 (the float64 and large-integer-label paths need float64) and sends spline orders (``mode=3``) to SciPy
on CPU. Measured with ``benchmarks/elastic.py`` (section "resampling engine only", image + label, one field):
572 x 572, 2 threads 2.2-3.4x slower than this function, 1 thread 1.8x slower; 128^3, 2 threads 2.1x slower, 1
thread equal (the kernel dominates, nothing is split). It never measured faster, so it is not used; figures in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from monai.utils import look_up_option

__all__ = ["RESAMPLE_PADDING_MODES", "look_up_resample_padding_mode", "threaded_grid_sample"]

#: Accepted padding modes (``torch.nn.functional.grid_sample``); ``"reflection"`` mirrors about the border pixel
#: centres (SciPy's ``mode="mirror"``).
RESAMPLE_PADDING_MODES = ("zeros", "border", "reflection")


def look_up_resample_padding_mode(padding_mode: str) -> str:
    """Canonical padding mode (one of :py:data:`RESAMPLE_PADDING_MODES`); ``ValueError`` otherwise.

    The one check of a padding mode: the public entry points (:py:func:`~.warping.warp`,
    :py:func:`~.warping.warp_lazy`, :py:func:`~.bspline.bspline_resample`) call it once.

    Examples::

        >>> look_up_resample_padding_mode("Reflection")
        'reflection'
    """
    p = None
    if isinstance(padding_mode, str):  # also GridSamplePadMode members
        name = str(padding_mode.value if hasattr(padding_mode, "value") else padding_mode).lower()
        p = look_up_option(name, RESAMPLE_PADDING_MODES, default=None)
    if p is None:  # our message: it names the argument
        raise ValueError(f"padding_mode must be one of {RESAMPLE_PADDING_MODES}, got {padding_mode!r}.")
    return p


def threaded_grid_sample(
    x: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear", padding_mode: str = "reflection"
) -> torch.Tensor:
    """``grid_sample(x, grid, mode, padding_mode, align_corners=True)`` on all CPU threads for a single image.

    On CPU with ``k > 1`` intra-op threads (``torch.get_num_threads()``) and a batch of one, the output rows are
    split into ``k`` equal blocks, passed as a batch of ``k`` (the input repeated), and a remainder call takes the
    rows left over; otherwise (CUDA, one thread, a batch) this is ``grid_sample`` itself.

    Args:
        x: input ``(N, C, *spatial_in)``, 2D or 3D.
        grid: sampling grid ``(N, *spatial_out, spatial_dims)`` in normalised ``(x, y[, z])`` coordinates,
            ``align_corners=True`` (pixel ``i`` of an axis of length ``n`` at ``2 i / (n - 1) - 1``).
        mode: ``"nearest"``, ``"bilinear"`` or (2D) ``"bicubic"``.
        padding_mode: one of :py:data:`RESAMPLE_PADDING_MODES`.

    Returns:
        ``(N, C, *spatial_out)``, equal to ``torch.nn.functional.grid_sample``'s result.

    Examples::

        >>> import torch
        >>> x = torch.rand(1, 2, 7, 5)
        >>> grid = torch.rand(1, 9, 4, 2) * 2 - 1
        >>> ref = torch.nn.functional.grid_sample(x, grid, padding_mode="reflection", align_corners=True)
        >>> torch.equal(threaded_grid_sample(x, grid), ref)
        True
    """
    threads = torch.get_num_threads() if x.device.type == "cpu" else 1
    rows = grid.shape[1]
    k = min(threads, rows)
    if k <= 1 or x.shape[0] != 1:
        return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    per = rows // k
    main = grid[:, : per * k].reshape(k, per, *grid.shape[2:])
    batch = x.expand(k, *x.shape[1:]).contiguous()
    y = F.grid_sample(batch, main, mode=mode, padding_mode=padding_mode, align_corners=True)
    y = y.transpose(0, 1).reshape(1, x.shape[1], per * k, *grid.shape[2:-1])
    if per * k == rows:
        return y
    rest = F.grid_sample(x, grid[:, per * k :], mode=mode, padding_mode=padding_mode, align_corners=True)
    return torch.cat([y, rest], 2)
