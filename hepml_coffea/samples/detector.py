"""A simple, documented detector response applied to generator-level particles.

The figures are those of the Delphes ATLAS card (``cards/delphes_card_ATLAS.tcl`` of
delphes/delphes): tracking efficiency and momentum resolution for charged particles,
ECAL energy resolution for photons and HCAL energy resolution for neutral hadrons,
with the calorimeters' energy thresholds. No towers, no pile-up, no magnetic-field
propagation: each particle stays one particle-flow candidate with its true direction.

========================  ==========================================================
particles                 response
========================  ==========================================================
charged hadrons           efficiency: 0 for pT <= 0.1 GeV; |eta| <= 1.5: 0.70 (pT <= 1),
                          0.95 (pT > 1); 1.5 < |eta| <= 2.5: 0.60 / 0.85.
                          relative pT resolution sqrt(a^2 + pT^2 b^2) with
                          (a, b) = (0.06, 1.3e-3) |eta|<=0.5, (0.10, 1.7e-3) <=1.5,
                          (0.25, 3.1e-3) <=2.5
electrons                 efficiency 0.73 / 0.95 / 0.99 (pT <= 1, <= 100, > 100) barrel,
                          0.50 / 0.83 / 0.90 endcap; resolution (0.03, 1.3e-3),
                          (0.05, 1.7e-3), (0.15, 3.1e-3)
muons                     efficiency 0.75 / 0.99 barrel, 0.70 / 0.98 endcap;
                          resolution (0.01, 1.0e-4), (0.015, 1.5e-4), (0.025, 3.5e-4)
photons (ECAL)            sigma(E) = sqrt(E^2 0.0017^2 + E 0.101^2), E > 0.5 GeV kept
neutral hadrons (HCAL)    sigma(E) = sqrt(E^2 0.0302^2 + E 0.5205^2 + 1.59^2) for
                          |eta| <= 1.7, sqrt(E^2 0.05^2 + E 0.706^2) above; E > 1 GeV
========================  ==========================================================

Smearing is log-normal (as Delphes does) so energies stay positive.
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_detector_response"]


def _tracking_efficiency(kind: np.ndarray, pt: np.ndarray, abseta: np.ndarray) -> np.ndarray:
    barrel = abseta <= 1.5
    low = pt <= 1.0
    eff = np.zeros_like(pt)
    # charged hadrons (kind 0)
    h = kind == 0
    eff[h] = np.where(barrel[h], np.where(low[h], 0.70, 0.95), np.where(low[h], 0.60, 0.85))
    # electrons (kind 1)
    e = kind == 1
    hi = pt > 100.0
    eff[e] = np.where(
        barrel[e],
        np.where(low[e], 0.73, np.where(hi[e], 0.99, 0.95)),
        np.where(low[e], 0.50, np.where(hi[e], 0.90, 0.83)),
    )
    # muons (kind 2)
    m = kind == 2
    eff[m] = np.where(barrel[m], np.where(low[m], 0.75, 0.99), np.where(low[m], 0.70, 0.98))
    eff[(pt <= 0.1) | (abseta > 2.5)] = 0.0
    return eff


_RESOLUTION = {  # kind -> ((a, b) for |eta| <= 0.5, <= 1.5, <= 2.5)
    0: ((0.06, 1.3e-3), (0.10, 1.7e-3), (0.25, 3.1e-3)),
    1: ((0.03, 1.3e-3), (0.05, 1.7e-3), (0.15, 3.1e-3)),
    2: ((0.01, 1.0e-4), (0.015, 1.5e-4), (0.025, 3.5e-4)),
}


def _track_resolution(kind: np.ndarray, pt: np.ndarray, abseta: np.ndarray) -> np.ndarray:
    region = np.where(abseta <= 0.5, 0, np.where(abseta <= 1.5, 1, 2))
    a = np.zeros_like(pt)
    b = np.zeros_like(pt)
    for k, pars in _RESOLUTION.items():
        for r, (ak_, bk) in enumerate(pars):
            sel = (kind == k) & (region == r)
            a[sel] = ak_
            b[sel] = bk
    return np.sqrt(a**2 + (pt * b) ** 2)


def _lognormal_factor(rng: np.random.Generator, rel_sigma: np.ndarray) -> np.ndarray:
    s2 = np.log1p(rel_sigma**2)
    return np.exp(rng.normal(-0.5 * s2, np.sqrt(s2)))


def apply_detector_response(
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    mass: np.ndarray,
    charge: np.ndarray,
    pdg_id: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Smear and filter particles in place; return the boolean mask of kept particles.

    Parameters are flat arrays over particles (any number of events); ``pt`` and
    ``mass`` are modified in place (directions are kept). Returns ``keep``: particles
    lost to tracking inefficiency or below the calorimeter thresholds are ``False``.
    """
    abseta = np.abs(eta)
    apdg = np.abs(pdg_id)
    charged = charge != 0
    keep = np.ones(pt.shape, dtype=bool)

    # tracks
    kind = np.where(apdg == 11, 1, np.where(apdg == 13, 2, 0))
    eff = _tracking_efficiency(kind, pt, abseta)
    keep &= ~charged | (rng.random(pt.shape) < eff)
    rel = _track_resolution(kind, pt, abseta)
    factor = np.where(charged, _lognormal_factor(rng, rel), 1.0)

    # calorimeters: smear energy at fixed direction and mass
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)
    photon = ~charged & (apdg == 22)
    nhad = ~charged & ~photon
    sigma_e = np.where(
        photon,
        np.sqrt(energy**2 * 0.0017**2 + energy * 0.101**2),
        np.where(
            abseta <= 1.7,
            np.sqrt(energy**2 * 0.0302**2 + energy * 0.5205**2 + 1.59**2),
            np.sqrt(energy**2 * 0.05**2 + energy * 0.706**2),
        ),
    )
    e_new = energy * _lognormal_factor(rng, sigma_e / np.maximum(energy, 1e-9))
    keep &= ~photon | (e_new > 0.5)
    keep &= ~nhad | (e_new > 1.0)
    # neutral: new energy -> new momentum, same mass (massless photons stay massless)
    p_new = np.sqrt(np.maximum(e_new**2 - mass**2, 0.0))
    pt_neutral = p_new / np.cosh(eta)
    pt[:] = np.where(charged, pt * factor, pt_neutral)
    return keep & (pt > 0)
