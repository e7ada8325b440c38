"""Detectors: what turns one window's feature maps into change masks.

Every detector answers the same question, :meth:`Detector.detect_window`: for
one window, each kind's mask and confidence (new structures, demolitions, new
crops). They differ only in how they find new structures
(:meth:`Detector.structures`), and may then keep or drop the objects found
(:meth:`Detector.select`):

- :class:`Unsupervised`: the spectral building score against the scene's
  threshold (:mod:`gis.detect.spectral`). The default, with no model.
- :class:`SegmentModel`: a classifier trained on labelled pairs scores
  superpixels (``gis model train --pairs``).
- :class:`ObjectModel`: the unsupervised objects, each scored by a classifier
  trained on patrol verdicts; those under 0.5 are dropped (``--alerts``).
- :class:`OnnxModel`: a user's own change model (two images in, probability
  out), at the imagery's own resolution.

Height change from DSMs and new crops are found alike by all of them.
:func:`load_detector` turns ``gis detect --model`` (a path, a model dict or
None) into one. Detectors are plain picklable objects: each window task carries
its detector to whichever process runs it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable

import cv2
import numpy as np

from gis.detect import classifier
from gis.detect.dsm import height_masks
from gis.detect.features import SceneStats
from gis.detect.onnx import OnnxChangeModel
from gis.detect.spectral import building_mask, clean
from gis.detect.vegetation import vegetation_mask
from gis.errors import ModelError
from gis.imagery.reading import WindowData

__all__ = ["Detector", "Unsupervised", "SegmentModel", "ObjectModel", "OnnxModel", "load_detector"]

#: a kind's mask and its confidence in [0, 1]: an array, or a function of the flat
#: indexes of the object pixels (computed only there; see gis.detect.objects.components)
Mask = tuple[np.ndarray, np.ndarray | Callable[[np.ndarray], np.ndarray]]


class Detector(ABC):
    """One way of finding changes in a window (see the module's docstring)."""

    #: needs every feature map (a classifier's inputs), not only the detectors' own
    full_features: bool = False
    #: sees the imagery at its own pixel size, not area-averaged to the work resolution
    native_resolution: bool = False

    @abstractmethod
    def structures(self, data: WindowData, f: dict, stats: SceneStats, res: float, nir: bool) -> Mask:
        """(mask, confidence) of new structures in the window; ``f``: its feature maps
        (:func:`gis.detect.features.compute_features`), ``res``: their pixel size (m)."""

    def detect_window(self, data: WindowData, f: dict, stats: SceneStats, res: float,
                      nir: bool) -> tuple[dict[str, Mask], np.ndarray | None]:
        """Each kind's (mask, confidence) in one window, earlier kinds first (they win
        where masks overlap), and the DSM's height gain (None without DSMs)."""
        masks = {"new_structure": self.structures(data, f, stats, res, nir)}
        gain = None
        if data.dsm_before is not None and data.dsm_after is not None:
            gain, loss, hs = height_masks(data.dsm_before, data.dsm_after, f, stats, res, nir)
            m0, c0 = masks["new_structure"]
            if callable(c0):
                c0 = c0(np.arange(m0.size)).reshape(m0.shape)
            # a height gain confirms a spectral change and finds grey-on-grey ones
            masks["new_structure"] = (m0 | gain, np.maximum(c0, np.where(gain, 0.5 + 0.5 * hs, 0)))
            # colour alone is a weak witness of demolition (on LEVIR it doubled the false
            # alarms): demolitions come from DSMs only
            masks["demolished"] = (loss, 0.5 + 0.5 * hs)
        masks["new_crops"] = vegetation_mask(f, stats, res, nir)
        return masks, gain

    def select(self, f: dict, labels: np.ndarray, records: list[dict], nir: bool) -> tuple[np.ndarray, list[dict]]:
        """The objects to report among those found (``labels``: their ids, 0 none;
        ``records``: one dict each, see :func:`gis.detect.objects.components`)."""
        return labels, records

    def outline_scores(self, masks: dict[str, Mask], dsm: bool) -> dict:
        """Kind -> (score map, level) that outlines are redrawn from on the imagery's
        own pixels (:func:`gis.detect.objects.refine`); none by default."""
        return {}

    def check_scene(self, stats: SceneStats, where: str = "") -> None:
        """Warn when the scene is not what the detector was made for (a trained model's
        colours: :func:`gis.detect.classifier.check_look`); nothing by default."""
        model = getattr(self, "model", None)
        if isinstance(model, dict):
            classifier.check_look(model, stats.lab_ref, where)


class Unsupervised(Detector):
    """The spectral building score against the scene's threshold."""

    def structures(self, data, f, stats, res, nir) -> Mask:
        m, s = building_mask(f, stats, res)
        t = stats.building_threshold
        # the confidence is only read at object pixels (see components)
        return m, lambda fg, s=s: np.clip(s.ravel()[fg] / (2 * t), 0, 1)


class SegmentModel(Detector):
    """Superpixels scored by a classifier trained on labelled pairs (``mode="segments"``)."""

    full_features = True

    def __init__(self, model: dict):
        self.model = model

    def structures(self, data, f, stats, res, nir) -> Mask:
        # a light blur of the segment probabilities smooths the superpixel staircase
        p = cv2.GaussianBlur(classifier.segment_probability(self.model, f, res, nir), (0, 0), 1.0)
        return clean(p >= 0.5, 3, 3), p

    def outline_scores(self, masks, dsm) -> dict:
        """The model's probability, which is smooth. Not the unsupervised building score:
        redrawn at its threshold, without the opening and closing that shaped its mask,
        objects fell apart (LEVIR false alarms 4.45 -> 5.00 a tile). Not with DSMs: a
        height gain has no such map."""
        return {} if dsm else {"new_structure": (masks["new_structure"][1], 0.5)}


class ObjectModel(Unsupervised):
    """The unsupervised objects, each scored by a classifier trained on patrol verdicts
    (``mode="objects"``): those under the model's ``keep`` level (0.5) are dropped.
    A model trained from a workspace's verdicts is a cascade: its ``proposer`` (< 1)
    lowers the building threshold, so more candidates are proposed for it to judge."""

    full_features = True

    def __init__(self, model: dict):
        self.model = model

    def structures(self, data, f, stats, res, nir) -> Mask:
        k = float(self.model.get("proposer", 1.0))
        if k != 1.0:
            stats = dataclasses.replace(stats, building_threshold=stats.building_threshold * k)
        return super().structures(data, f, stats, res, nir)

    def select(self, f, labels, records, nir):
        if not records:
            return labels, records
        p = classifier.object_probability(self.model, f, labels, labels.max() + 1, nir)
        level = float(self.model.get("keep", 0.5))
        keep = set()
        for r in records:
            r["confidence"] = float(p[r["id"]])
            if p[r["id"]] >= level:
                keep.add(r["id"])
        return np.where(np.isin(labels, list(keep)), labels, 0), [r for r in records if r["id"] in keep]


class OnnxModel(Detector):
    """A change model with ``probability(before, after)`` (an
    :class:`~gis.detect.onnx.OnnxChangeModel`): it sees the imagery at the
    resolution it was trained on."""

    native_resolution = True

    def __init__(self, model):
        self.model = model

    def structures(self, data, f, stats, res, nir) -> Mask:
        p = self.model.probability(data.before, data.after)
        return p >= 0.5, p


def load_detector(model=None, nir: bool = False) -> Detector:
    """The detector for ``model``: None (unsupervised), a ``gis model train`` file
    (.joblib) or its dict, an ``.onnx`` change model (path or loaded), or a
    :class:`Detector`. ``nir``: the imagery has a NIR band (a trained model must
    have seen the same bands). Raises :class:`~gis.errors.ModelError`."""
    if model is None:
        return Unsupervised()
    if isinstance(model, Detector):
        return model
    if hasattr(model, "probability"):
        return OnnxModel(model)
    source = None
    if not isinstance(model, dict):
        if str(model).lower().endswith(".onnx"):
            return OnnxModel(OnnxChangeModel(model))
        source = model
        model = classifier.load_model(model)
        classifier.check_nir(model, nir)
    kinds = {"segments": SegmentModel, "objects": ObjectModel}
    if model.get("mode") not in kinds:
        raise ModelError(f"unknown classifier mode {model.get('mode')!r} (expected segments or objects)",
                         path=source, hint="train it again with `gis model train`")
    return kinds[model["mode"]](model)
