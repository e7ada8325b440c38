"""ONNX adapter: run a user's own change model (two images in, probability out).

The model must take two float32 inputs of shape (1, C, H, W), the before and
after images scaled to 0-1 (input order: as declared by the model, or by the
names ``before``/``after`` when it uses them), and return one output of shape
(1, 1, H, W) (or (1, H, W)) with the change probability. It runs on CPU with
onnxruntime, tiled with overlap: each tile's centre is kept, so the tile edges,
where a convolutional model sees no context, do not reach the result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gis.errors import ModelError

__all__ = ["OnnxChangeModel"]


class OnnxChangeModel:
    """A loaded ONNX change model. Picklable by path (sessions are rebuilt per process)."""

    def __init__(self, path, *, tile: int = 256, overlap: int = 32):
        self.path = str(path)
        self.tile, self.overlap = tile, overlap
        self._session = None
        self._session_or_raise()

    def __getstate__(self):
        return {"path": self.path, "tile": self.tile, "overlap": self.overlap}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._session = None

    def _session_or_raise(self):
        if self._session is None:
            import onnxruntime as ort

            if not Path(self.path).exists():
                raise ModelError("ONNX model file does not exist", path=self.path)
            try:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1  # parallelism comes from the window tasks
                self._session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise ModelError(f"cannot load ONNX model ({exc})", path=self.path,
                                 hint="export the model again (opset >= 11), two inputs, one output") from exc
            inputs = self._session.get_inputs()
            if len(inputs) != 2:
                raise ModelError(f"ONNX model has {len(inputs)} inputs, expected 2 (before, after)",
                                 path=self.path)
            names = [i.name for i in inputs]
            self._names = (("before", "after") if set(names) == {"before", "after"} else tuple(names))
            self._channels = inputs[0].shape[1] if isinstance(inputs[0].shape[1], int) else None
        return self._session

    def probability(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Change probability (h, w) for (bands, h, w) 0-255 arrays."""
        sess = self._session_or_raise()
        c = self._channels or before.shape[0]
        b, a = before[:c] / 255.0, after[:c] / 255.0
        _, h, w = b.shape
        t, o = self.tile, self.overlap
        step = t - 2 * o
        out = np.zeros((h, w), np.float32)
        pad = ((0, 0), (o, o + t), (o, o + t))
        bp = np.pad(b, pad, mode="reflect").astype(np.float32)
        ap = np.pad(a, pad, mode="reflect").astype(np.float32)
        for r in range(0, h, step):
            for q in range(0, w, step):
                feed = {self._names[0]: bp[None, :, r:r + t, q:q + t],
                        self._names[1]: ap[None, :, r:r + t, q:q + t]}
                p = np.asarray(sess.run(None, feed)[0]).reshape(t, t)
                hh, ww = min(step, h - r), min(step, w - q)
                out[r:r + hh, q:q + ww] = p[o:o + hh, o:o + ww]
        return np.clip(out, 0, 1)
