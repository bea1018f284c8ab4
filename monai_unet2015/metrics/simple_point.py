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

"""2D simple points and the topology-preserving warping of a binary image by simple-point flips.

A pixel is *simple* when flipping it (foreground <-> background) changes neither the number of
foreground components, nor the number of background components, nor any hole: the topology of the
image is preserved (Bertrand & Malandain 1994; Kong & Rosenfeld 1989). In 2D this only depends on
the 8 neighbours of the pixel, so one 256-entry lookup table answers it for every pixel at once.

Warping (Jain et al. 2010, "Boundary learning by optimization with topological constraints", CVPR)
flips simple pixels of a ``source`` image towards a ``target`` until no disagreeing pixel is simple;
the pixels that still disagree are the topological errors of the target with respect to the source.
"""

from __future__ import annotations

import functools

import numpy as np

from ._validation import to_numpy

__all__ = ["NEIGHBOUR_OFFSETS", "simple_point_lut", "neighbour_codes", "simple_points", "warp_binary"]

# Bit k of a neighbourhood code is the value of neighbour k, in raster order without the centre:
#   bit 0 1 2        (-1,-1) (-1, 0) (-1,+1)
#   bit 3 . 4   <->  ( 0,-1)    p    ( 0,+1)
#   bit 5 6 7        (+1,-1) (+1, 0) (+1,+1)
NEIGHBOUR_OFFSETS: tuple[tuple[int, int], ...] = (
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
)


def _check_connectivity(connectivity: int, func: str) -> int:
    if connectivity not in (1, 2, 4, 8) or isinstance(connectivity, bool):
        raise ValueError(
            f"{func}: connectivity must be 1 (foreground 4-connected, background 8-connected) or 2 "
            f"(foreground 8-connected, background 4-connected); 4 and 8 are accepted as aliases, got {connectivity!r}."
        )
    return 1 if connectivity in (1, 4) else 2


def _components_in_ring(patch: np.ndarray, eight: bool, only_4_adjacent: bool) -> int:
    """Number of connected components of the ``True`` pixels of a 3x3 patch (centre excluded)."""
    cells = [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1) and patch[r, c]]
    seen: set[tuple[int, int]] = set()
    count = 0
    for start in cells:
        if start in seen:
            continue
        stack, members = [start], []
        seen.add(start)
        while stack:
            r, c = stack.pop()
            members.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if (dr, dc) == (0, 0) or (not eight and dr != 0 and dc != 0):
                        continue
                    q = (r + dr, c + dc)
                    if q in seen or q == (1, 1) or not (0 <= q[0] < 3 and 0 <= q[1] < 3) or not patch[q]:
                        continue
                    seen.add(q)
                    stack.append(q)
        # with 4-adjacency only the components that touch an edge-neighbour of the centre count
        if not only_4_adjacent or any(abs(r - 1) + abs(c - 1) == 1 for r, c in members):
            count += 1
    return count


@functools.lru_cache(maxsize=2)
def simple_point_lut(connectivity: int = 1) -> np.ndarray:
    """Lookup table ``(256,) bool``: whether a pixel with a given neighbourhood code is simple.

    The code of a pixel is ``sum(2**k * neighbour_k)`` over its 8 neighbours in the order of
    :py:data:`NEIGHBOUR_OFFSETS` (raster order, centre skipped). A pixel is simple when its
    topological numbers are both one (Bertrand & Malandain 1994): with ``connectivity=1`` the
    foreground is 4-connected and the background 8-connected, so ``T4(foreground) == 1`` (one
    4-component of the foreground neighbours touches an edge-neighbour) and ``T8(background) == 1``;
    ``connectivity=2`` swaps the roles. Simpleness does not depend on the value of the pixel itself.

    Args:
        connectivity: 1 (foreground 4-, background 8-connected, the ISBI 2012 convention for cells)
            or 2 (foreground 8-, background 4-connected).

    Examples::

        >>> lut = simple_point_lut()
        >>> bool(lut[0]), bool(lut[255])  # an isolated pixel and an interior pixel are not simple
        (False, False)
        >>> bool(lut[0b00011111])  # the upper half of the neighbourhood is foreground: simple
        True
    """
    connectivity = _check_connectivity(connectivity, "simple_point_lut")
    lut = np.zeros(256, dtype=bool)
    for code in range(256):
        patch = np.zeros((3, 3), dtype=bool)
        for k, (dr, dc) in enumerate(NEIGHBOUR_OFFSETS):
            patch[1 + dr, 1 + dc] = bool(code >> k & 1)
        if connectivity == 1:
            t_fg = _components_in_ring(patch, eight=False, only_4_adjacent=True)
            t_bg = _components_in_ring(~patch, eight=True, only_4_adjacent=False)
        else:
            t_fg = _components_in_ring(patch, eight=True, only_4_adjacent=False)
            t_bg = _components_in_ring(~patch, eight=False, only_4_adjacent=True)
        lut[code] = t_fg == 1 and t_bg == 1
    lut.setflags(write=False)
    return lut


def _as_binary_2d(x, name: str, func: str) -> np.ndarray:
    arr = to_numpy(x, name, func)
    if arr.ndim != 2:
        raise ValueError(
            f"{func}: {name} must be a 2D image (H, W), got shape {tuple(arr.shape)}; simple points and "
            "warping are implemented for 2D only (evaluate a 3D stack slice by slice)."
        )
    if arr.dtype != bool:
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{func}: {name} must be binary (bool or values 0/1), got values {np.unique(arr)[:8]}.")
        arr = arr != 0
    return arr


def neighbour_codes(image) -> np.ndarray:
    """The 8-bit neighbourhood code of every pixel of a 2D binary image (outside pixels are 0).

    Examples::

        >>> import numpy as np
        >>> img = np.zeros((3, 3), bool); img[0, :] = True
        >>> int(neighbour_codes(img)[1, 1])  # bits 0, 1 and 2: the row above
        7
    """
    img = _as_binary_2d(image, "image", "neighbour_codes")
    pad = np.pad(img, 1).astype(np.uint8)
    h, w = img.shape
    code = np.zeros((h, w), dtype=np.uint8)
    for k, (dr, dc) in enumerate(NEIGHBOUR_OFFSETS):
        code |= pad[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] << np.uint8(k)
    return code


def simple_points(image, connectivity: int = 1) -> np.ndarray:
    """Boolean mask of the simple pixels of a 2D binary image (pixels outside the image are background).

    Args:
        image: 2D binary array (numpy or torch), ``True``/1 is foreground.
        connectivity: 1 (foreground 4-, background 8-connected) or 2 (the reverse).

    Examples::

        >>> import numpy as np
        >>> img = np.zeros((5, 5), bool); img[1:4, 1:4] = True
        >>> simple_points(img).astype(int)[1:4, 1:4]  # corners and edges of the square, not its centre
        array([[1, 1, 1],
               [1, 0, 1],
               [1, 1, 1]])
    """
    return simple_point_lut(_check_connectivity(connectivity, "simple_points"))[neighbour_codes(image)]


def _tiebreak(n: int) -> np.ndarray:
    # a fixed pseudo-random order (Knuth's multiplicative hash) so that equal priorities do not flip
    # along a raster scan one pixel per round
    return (np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(1 << 32)


def warp_binary(source, target, priority=None, connectivity: int = 1, return_iterations: bool = False):
    """Warp a 2D binary ``source`` towards ``target`` by flipping simple points only.

    Every flip changes a pixel where ``source`` and ``target`` disagree into agreement, and only if
    the pixel is simple at that moment, so the warped image has the topology of ``source`` (Jain et
    al. 2010). Pixels outside the image are treated as background. The flips follow the greedy order
    of the ISBI 2012 challenge's implementation (Fiji, ``WarpingError.simplePointWarp2d``): higher
    ``priority`` first. They are vectorised: in each round every disagreeing simple pixel whose
    priority is the highest among the disagreeing simple pixels of its 3x3 neighbourhood is flipped.
    Those pixels are not neighbours of each other, so flipping them together equals flipping them one
    after the other (a flip only changes the simpleness of the 8 neighbours). Rounds repeat until no
    disagreeing pixel is simple; the number of disagreeing pixels decreases in every round.

    Args:
        source: 2D binary image to warp (the ground truth for the warping error).
        target: 2D binary image of the same shape (the thresholded prediction).
        priority: optional 2D float array; disagreeing pixels with a higher value are flipped first
            (the challenge uses ``|probability - threshold|``). Ties are broken by a fixed
            pseudo-random order. ``None``: all equal.
        connectivity: 1 (foreground 4-, background 8-connected) or 2 (the reverse).
        return_iterations: also return the number of rounds.

    Returns:
        The warped image (bool, shape of ``source``), and the number of rounds if requested.

    Examples::

        >>> import numpy as np
        >>> cell = np.zeros((8, 8), bool); cell[2:6, 2:6] = True
        >>> shifted = np.roll(cell, 1, axis=1)  # a shifted border is forgiven
        >>> bool((warp_binary(cell, shifted) != shifted).any())
        False
        >>> holed = cell.copy(); holed[3, 3] = False  # a hole is not
        >>> int((warp_binary(cell, holed) != holed).sum())
        1
    """
    func = "warp_binary"
    src = _as_binary_2d(source, "source", func)
    tgt = _as_binary_2d(target, "target", func)
    if src.shape != tgt.shape:
        raise ValueError(f"{func}: source and target must have the same shape, got {src.shape} and {tgt.shape}.")
    connectivity = _check_connectivity(connectivity, func)
    if priority is not None:
        priority = to_numpy(priority, "priority", func)
        if priority.shape != src.shape:
            raise ValueError(f"{func}: priority must have the shape of source {src.shape}, got {priority.shape}.")
    return _warp_binary(src, tgt, priority, connectivity, return_iterations)


def _warp_binary(
    src: np.ndarray, tgt: np.ndarray, priority: np.ndarray | None, connectivity: int, return_iterations: bool = False
):
    """:py:func:`warp_binary` of checked arguments: 2D bool ``src`` and ``tgt`` of one shape, ``priority`` ``None``
    or a numeric array of that shape, ``connectivity`` 1 or 2."""
    lut = simple_point_lut(connectivity)
    h, w = src.shape
    wd = w + 2
    cur = np.pad(src, 1).ravel()
    mismatch = cur != np.pad(tgt, 1).ravel()  # the padding never disagrees
    itype = np.int32 if cur.size < 2**31 - 1 else np.int64
    idx = np.flatnonzero(mismatch).astype(itype)
    rounds = 0
    if idx.size:
        # unique integer key per disagreeing pixel: rank by (priority, tie-break), larger = earlier
        tie = _tiebreak(cur.size)[idx]
        if priority is None:
            order = np.argsort(tie, kind="stable")
        else:
            pri = np.pad(priority.astype(np.float64), 1).ravel()[idx]
            order = np.lexsort((tie, pri))
        key = np.full(cur.size, -1, dtype=itype)
        key[idx[order]] = np.arange(idx.size, dtype=itype)
        offsets = np.array([dr * wd + dc for dr, dc in NEIGHBOUR_OFFSETS], dtype=itype)
        cand_key = np.full(cur.size, -1, dtype=itype)  # keys of this round's candidates, -1 elsewhere
        # Only pixels whose neighbourhood changed (or that were simple but lost) can be simple in the
        # next round, so each round looks at the moving front only, not at every disagreeing pixel.
        flag = np.zeros(cur.size, dtype=bool)
        active = idx
        while active.size:
            code = np.zeros(active.size, dtype=np.uint8)
            for k, off in enumerate(offsets.tolist()):  # 8 flat gathers beat one (n, 8) gather here
                code |= cur[active + off].view(np.uint8) << k
            cand = active[lut[code]]
            if cand.size == 0:
                break
            ck = key[cand]
            cand_key[cand] = ck
            best = np.full(cand.size, -1, dtype=itype)
            for off in offsets.tolist():
                np.maximum(best, cand_key[cand + off], out=best)
            cand_key[cand] = -1
            wins = ck > best
            win = cand[wins]
            cur[win] = ~cur[win]
            mismatch[win] = False
            rounds += 1
            touched = (win[:, None] + offsets).ravel()
            flag[cand[~wins]] = True
            flag[touched[mismatch[touched]]] = True
            active = np.flatnonzero(flag).astype(itype)  # deduplicated, cheaper than np.unique
            flag[active] = False
    warped = cur.reshape(h + 2, wd)[1:-1, 1:-1].copy()
    return (warped, rounds) if return_iterations else warped
