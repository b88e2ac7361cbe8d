"""Physics-aware training: the jet's symmetries as data augmentation, and distillation.

Symmetries of the inputs (particle features in the jet frame: ``deta``, ``dphi`` and
quantities that do not depend on the direction, ``log_pt``, ``log_e``, their ratios to the
jet, ``dR``):

* **eta reflection** ``deta -> -deta``: exact. pp collisions are symmetric under
  eta -> -eta and so is the detector response of ``hepml_coffea.samples`` (efficiencies and
  resolutions depend on |eta| only); the fat-jet selection is symmetric (|eta| < 2).
* **phi reflection** ``dphi -> -dphi``: exact. Nothing in the generated samples depends on
  the sign of phi (no magnetic field: charged particles are not bent).
* **rotation about the jet axis** by an angle in the (deta, dphi) plane: approximate. The
  jet is boosted and narrow, so the (deta, dphi) plane is nearly isotropic, but a rotation
  moves particles in eta by up to R = 0.8, where efficiencies and resolutions change, and
  (eta, phi) distances are not exactly those of the rest frame. Off by default.

The CNN's jet images are centred, rotated to their principal axis and flipped to a fixed
quadrant before pixelisation (:mod:`hepml_coffea.representations.image`): these symmetries
are already divided out, so augmenting images changes nothing and is not offered.

Distillation: the student learns from the truth label and a teacher's score,
``(1 - alpha) CE(student, label) + alpha T^2 KL(teacher_T || student_T)`` with both
two-class distributions softened by the temperature ``T`` (Hinton et al. 2015).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hepml_coffea.representations import InputSpec

__all__ = ["AUGMENTATIONS", "Augmenter", "distillation_loss", "teacher_logits"]

#: what ``TrainConfig.augment`` accepts
AUGMENTATIONS = ("none", "reflect", "reflect+rotate")


class Augmenter:
    """Applies random jet-frame reflections (and rotations) to a batch of model inputs.

    Parameters
    ----------
    spec : the input spec the arrays were built with (sequence or pointcloud)
    names : the model's input names in order (``features, mask`` / ``points, features, mask``)
    mode : one of :data:`AUGMENTATIONS`

    Raises
    ------
    ValueError
        an unknown mode, an image spec, or a spec without raw ``deta`` / ``dphi`` features
        (the symmetries act on them; standardised copies would need their centre to be 0)
    """

    def __init__(self, spec: InputSpec, names: tuple[str, ...], mode: str) -> None:
        if mode not in AUGMENTATIONS:
            msg = f"augment={mode!r}: choose one of {AUGMENTATIONS}"
            raise ValueError(msg)
        self.mode = mode
        self.names = tuple(names)
        self.active = mode != "none"
        if not self.active:
            return
        if spec.kind not in ("sequence", "pointcloud"):
            msg = (f"augment={mode!r} needs a sequence or point-cloud spec; {spec.kind} inputs are already "
                   "canonicalised (images: centred, rotated, flipped)")
            raise ValueError(msg)
        feats = {f.name: (i, f) for i, f in enumerate(spec.features)}
        missing = [n for n in ("deta", "dphi") if n not in feats]
        if missing:
            msg = f"augment={mode!r} acts on the deta / dphi features; the spec has no {missing}"
            raise ValueError(msg)
        for n in ("deta", "dphi"):
            f = feats[n][1]
            if f.center != 0.0 or f.clip_min is not None or f.clip_max is not None:
                msg = f"augment={mode!r}: feature {n} must be unclipped and centred at 0 (has centre {f.center})"
                raise ValueError(msg)
        if feats["deta"][1].scale != feats["dphi"][1].scale and "rotate" in mode:
            msg = "augment with rotation needs deta and dphi on the same scale"
            raise ValueError(msg)
        self.i_eta, self.i_phi = feats["deta"][0], feats["dphi"][0]
        self.points = None
        if spec.kind == "pointcloud":
            pts = list(spec.points)
            if pts[:2] != ["deta", "dphi"]:
                msg = f"augment={mode!r}: point coordinates must be (deta, dphi), got {pts}"
                raise ValueError(msg)
            self.points = (0, 1)

    def __call__(self, inputs: list[Any], generator: Any) -> list[Any]:
        """A new list of tensors with each jet reflected (and rotated) at random.

        Shapes:
            inputs as the model takes them, e.g. features (B, F, P), mask (B, 1, P) -> same
        """
        if not self.active:
            return inputs
        import torch

        feats = inputs[self.names.index("features")]
        b = feats.shape[0]
        s_eta = (torch.randint(0, 2, (b, 1), generator=generator) * 2 - 1).to(feats.dtype).to(feats.device)
        s_phi = (torch.randint(0, 2, (b, 1), generator=generator) * 2 - 1).to(feats.dtype).to(feats.device)
        if "rotate" in self.mode:
            theta = (torch.rand((b, 1), generator=generator) * 2 * np.pi).to(feats.dtype).to(feats.device)
            c, s = torch.cos(theta), torch.sin(theta)
        else:
            c = s = None

        def transform(x: Any, i: int, j: int) -> Any:
            x = x.clone()
            u, v = x[:, i, :] * s_eta, x[:, j, :] * s_phi
            if c is not None:
                u, v = c * u - s * v, s * u + c * v
            x[:, i, :], x[:, j, :] = u, v
            return x

        out = list(inputs)
        out[self.names.index("features")] = transform(feats, self.i_eta, self.i_phi)
        if self.points is not None:
            k = self.names.index("points")
            out[k] = transform(inputs[k], *self.points)
        return out


def teacher_logits(scores: np.ndarray) -> np.ndarray:
    """Two-class logits ``[log(1 - p), log(p)]`` of teacher scores ``p`` (clipped to
    [1e-7, 1 - 1e-7]); NaN rows where the teacher gave no score.

    Shapes:
        (N,) -> (N, 2)
    """
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    out = np.stack([np.log1p(-p), np.log(p)], axis=1).astype(np.float32)
    out[~np.isfinite(np.asarray(scores, dtype=np.float64))] = np.nan
    return out


def distillation_loss(logits: Any, labels: Any, teacher: Any, alpha: float, temperature: float) -> Any:
    """``(1 - alpha) CE(logits, labels) + alpha T^2 KL(softmax(teacher / T) || softmax(logits / T))``.

    Jets without a teacher score (NaN rows) get the label term only.

    Shapes:
        logits (B, 2), labels (B,), teacher (B, 2) -> scalar
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    ce = F.cross_entropy(logits, labels)
    if alpha <= 0:
        return ce
    ok = torch.isfinite(teacher).all(dim=1)
    if not bool(ok.any()):
        return ce
    t = float(temperature)
    log_student = F.log_softmax(logits[ok] / t, dim=1)
    target = F.softmax(teacher[ok] / t, dim=1)
    kd = F.kl_div(log_student, target, reduction="batchmean") * (t * t)
    return (1.0 - alpha) * ce + alpha * kd
