#!/usr/bin/env python3
"""Fit the polynomial coefficients used by the vectorised erf/erfc in src/cpu/vmath.h.

  |z| <  A : erf(z)  = z * P(z^2)                      (relative error)
  |z| >= A : erfc(z) = t * exp(-z^2) * Q(t), t = 2/(2+z)  (relative error of erfc)
  exp(r), |r| <= ln2/2: 1 + r + r^2 * E(r)             (relative error)

Near-minimax fits by Lawson's iteratively reweighted least squares on a dense grid, in
double precision against mpmath references. Prints C initialisers. Needs numpy + mpmath
(the project's .venv has both):  .venv/bin/python bench/fit_erf.py
"""
import sys

import mpmath
import numpy as np

mpmath.mp.dps = 40


def lawson(x, f, basis, weight, iters=200):
    """min max |weight*(sum c_k basis_k(x) - f)| approximately."""
    A = np.stack([b(x) for b in basis], axis=1) * weight[:, None]
    y = f * weight
    w = np.ones_like(x) / len(x)
    for _ in range(iters):
        sw = np.sqrt(w)
        c, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
        e = np.abs(A @ c - y)
        w = w * e
        w /= w.sum()
    return c, np.max(np.abs(A @ c - y))


def fit_erf_small(A, deg):
    z = np.linspace(1e-6, A, 20000)
    u = z * z
    f = np.array([float(mpmath.erf(mpmath.mpf(v)) / mpmath.mpf(v)) for v in z])
    basis = [lambda u, k=k: u ** k for k in range(deg + 1)]
    return lawson(u, f, basis, 1.0 / f)


def fit_erfc_large(A, zmax, deg):
    z = np.linspace(A, zmax, 20000)
    t = 2.0 / (2.0 + z)
    f = np.array([float(mpmath.erfc(mpmath.mpf(v)) * mpmath.exp(mpmath.mpf(v) ** 2) / mpmath.mpf(tt))
                  for v, tt in zip(z, t)])
    basis = [lambda t, k=k: t ** k for k in range(deg + 1)]
    return lawson(t, f, basis, 1.0 / f)


def fit_exp(deg):
    h = float(mpmath.log(2)) / 2
    r = np.linspace(-h, h, 20001)
    r = r[np.abs(r) > 1e-9]
    f = np.array([float((mpmath.exp(mpmath.mpf(v)) - 1 - mpmath.mpf(v)) / mpmath.mpf(v) ** 2) for v in r])
    basis = [lambda r, k=k: r ** k for k in range(deg + 1)]
    ex = np.exp(r)
    return lawson(r, f, basis, r * r / ex)


def show(name, c, err):
    print("/* %s: max fitted error %.2e */" % (name, err))
    print("static const float %s[%d] = {%s};" % (name, len(c), ", ".join("%.9ef" % v for v in c)))


if __name__ == "__main__":
    A = float(sys.argv[1]) if len(sys.argv) > 1 else 0.875
    ds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    dl = int(sys.argv[3]) if len(sys.argv) > 3 else 9
    de = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    zmax = 10.0
    show("ERF_SMALL", *fit_erf_small(A, ds))
    show("ERFC_LARGE", *fit_erfc_large(A, zmax, dl))
    show("EXP_POLY", *fit_exp(de))
