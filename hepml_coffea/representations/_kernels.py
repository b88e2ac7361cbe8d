"""numba kernels shared by the representation builders (internal)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["argsort_desc_per_jet", "fill_image", "fill_padded", "is_sorted_desc"]


@nb.njit(cache=True, nogil=True)
def is_sorted_desc(pt, starts, counts):  # pragma: no cover - numba
    """True if ``pt`` is non-increasing inside every jet."""
    for i in range(counts.shape[0]):
        s = starts[i]
        for j in range(s + 1, s + counts[i]):
            if pt[j] > pt[j - 1]:
                return False
    return True


@nb.njit(cache=True, nogil=True)
def argsort_desc_per_jet(pt, starts, counts):  # pragma: no cover - numba
    """Global indices ordering each jet's constituents by decreasing pt (stable)."""
    order = np.empty(pt.shape[0], dtype=np.int64)
    for i in range(counts.shape[0]):
        s = starts[i]
        n = counts[i]
        if n == 0:
            continue
        local = np.argsort(-pt[s : s + n], kind="mergesort")
        for j in range(n):
            order[s + j] = s + local[j]
    return order


@nb.njit(cache=True, nogil=True)
def fill_padded(
    F, starts, counts, order, use_order, P, center, scale, cmin, cmax, pad, transform, out
):  # pragma: no cover - numba
    """Gather flat features ``F (K, n_const)`` into ``out (n_jets, K, P)``.

    Slot ``p`` of jet ``i`` takes constituent ``starts[i] + p`` (or
    ``order[starts[i] + p]`` when ``use_order``) for ``p < min(counts[i], P)``;
    the rest get ``pad[k]``.  Real entries are transformed
    ``clip((x - center) * scale, cmin, cmax)`` for the rows where
    ``transform[k]`` is true (identity rows are copied as they are).
    """
    n_jets = counts.shape[0]
    K = F.shape[0]
    for i in range(n_jets):
        s = starts[i]
        n = min(counts[i], P)
        for k in range(K):
            dst = out[i, k]
            if use_order:
                for p in range(n):
                    dst[p] = F[k, order[s + p]]
            else:
                dst[:n] = F[k, s : s + n]
            if transform[k]:
                c = center[k]
                sc = scale[k]
                lo = cmin[k]
                hi = cmax[k]
                for p in range(n):
                    x = (np.float64(dst[p]) - c) * sc
                    dst[p] = min(max(x, lo), hi)
            dst[n:] = pad[k]


@nb.njit(cache=True, nogil=True)
def fill_image(
    starts, counts, deta, dphi, pt, charge, jpt, centre, rotate, flip, R, npix, chan, out
):  # pragma: no cover - numba
    """Pixelise every jet into ``out (n_jets, n_chan, npix, npix)`` (zeroed).

    ``deta``, ``dphi`` (wrapped) and ``pt`` are flat per constituent, ``jpt`` per jet.
    See :func:`hepml_coffea.representations.image.build_image` for conventions.
    Channel codes: 0 pt/pt_jet, 1 charged pt/pt_jet, 2 neutral pt/pt_jet, 3 count.
    """
    n_jets = counts.shape[0]
    nmax = 0
    for i in range(n_jets):
        nmax = max(nmax, counts[i])
    xs = np.empty(nmax, dtype=np.float64)
    ys = np.empty(nmax, dtype=np.float64)
    ws = np.empty(nmax, dtype=np.float64)
    width = 2.0 * R / npix
    nch = chan.shape[0]
    for i in range(n_jets):
        n = counts[i]
        if n == 0:
            continue
        s = starts[i]
        ptj = max(np.float64(jpt[i]), 1e-8)
        sw = 0.0
        sx = 0.0
        sy = 0.0
        for j in range(n):
            x = np.float64(deta[s + j])
            y = np.float64(dphi[s + j])
            w = np.float64(pt[s + j]) / ptj
            xs[j] = x
            ys[j] = y
            ws[j] = w
            sw += w
            sx += w * x
            sy += w * y
        if centre and sw > 0.0:
            cx = sx / sw
            cy = sy / sw
            for j in range(n):
                xs[j] -= cx
                ys[j] -= cy
        if rotate:
            ixx = 0.0
            iyy = 0.0
            ixy = 0.0
            for j in range(n):
                ixx += ws[j] * xs[j] * xs[j]
                iyy += ws[j] * ys[j] * ys[j]
                ixy += ws[j] * xs[j] * ys[j]
            theta = 0.5 * math.atan2(2.0 * ixy, ixx - iyy)  # major-axis angle
            a = 0.5 * math.pi - theta
            ca = math.cos(a)
            sa = math.sin(a)
            for j in range(n):
                x = xs[j]
                y = ys[j]
                xs[j] = x * ca - y * sa
                ys[j] = x * sa + y * ca
        if flip:
            q0 = 0.0  # x>=0, y>=0
            q1 = 0.0  # x>=0, y<0
            q2 = 0.0  # x<0,  y>=0
            q3 = 0.0  # x<0,  y<0
            for j in range(n):
                if not (abs(xs[j]) < R and abs(ys[j]) < R):
                    continue  # only what ends up in the image counts
                if xs[j] >= 0.0:
                    if ys[j] >= 0.0:
                        q0 += ws[j]
                    else:
                        q1 += ws[j]
                else:
                    if ys[j] >= 0.0:
                        q2 += ws[j]
                    else:
                        q3 += ws[j]
            fx = 1.0
            fy = 1.0
            best = q0
            if q1 > best:
                best = q1
                fx = 1.0
                fy = -1.0
            if q2 > best:
                best = q2
                fx = -1.0
                fy = 1.0
            if q3 > best:
                best = q3
                fx = -1.0
                fy = -1.0
            if fx < 0.0 or fy < 0.0:
                for j in range(n):
                    xs[j] *= fx
                    ys[j] *= fy
        for j in range(n):
            ix = math.floor((xs[j] + R) / width)
            iy = math.floor((ys[j] + R) / width)
            if ix < 0 or ix >= npix or iy < 0 or iy >= npix:
                continue
            ixi = np.int64(ix)
            iyi = np.int64(iy)
            for c in range(nch):
                code = chan[c]
                if code == 0:
                    out[i, c, iyi, ixi] += ws[j]
                elif code == 1:
                    if charge[s + j] != 0:
                        out[i, c, iyi, ixi] += ws[j]
                elif code == 2:
                    if charge[s + j] == 0:
                        out[i, c, iyi, ixi] += ws[j]
                else:
                    out[i, c, iyi, ixi] += 1.0
