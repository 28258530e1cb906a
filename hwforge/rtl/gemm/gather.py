"""Gather tables (`GemmLayer.a_gather`) for the layouts a compiler meets when lowering CNNs to GEMMs.

The accelerator writes each layer's output as M x N rows, so a convolution lowered to im2col produces its
output *channels-last* (rows = (batch, oh, ow), columns = channels). These helpers build the index tables that
let the hardware read such tensors (or the NCHW network input) in the order the next GEMM needs:

- `conv2d_gather`: the im2col matrix of a conv (columns ordered (c, kh, kw), i.e. ``weight.reshape(O, -1)``),
  from an NCHW or NHWC source, with zero padding expressed as -1.
- `flatten_gather`: torch's NCHW ``flatten(1)`` of a tensor stored channels-last.
"""

from __future__ import annotations

import numpy as np

from hwforge.errors import ConfigError
from hwforge.ir.quant import im2col


def _source_index(layout: str, b, c, y, x, channels: int, h: int, w: int):
    if layout == "nchw":
        return ((b * channels + c) * h + y) * w + x
    if layout == "nhwc":
        return ((b * h + y) * w + x) * channels + c
    raise ConfigError(f"gather: unknown layout {layout!r}; use 'nchw' or 'nhwc'")


def conv2d_gather(batch: int, channels: int, h: int, w: int, kh: int, kw: int, stride: tuple[int, int] = (1, 1),
                  padding: tuple[int, int] = (0, 0), layout: str = "nchw") -> np.ndarray:
    """``(batch*oh*ow) x (channels*kh*kw)`` table; row (b, oy, ox), column (c, ky, kx); -1 where padded.

    It is the IR's own `im2col` applied to the source's index array (shifted by one, so that im2col's zero
    padding becomes -1): one definition of patch order for the golden model and the hardware tables.
    """
    sh, sw = stride
    ph, pw = padding
    if (h + 2 * ph - kh) // sh + 1 < 1 or (w + 2 * pw - kw) // sw + 1 < 1:
        raise ConfigError(f"gather: a {kh}x{kw} kernel does not fit a padded {h}x{w} input")
    b, c, y, x = np.meshgrid(np.arange(batch), np.arange(channels), np.arange(h), np.arange(w), indexing="ij")
    index = _source_index(layout, b, c, y, x, channels, h, w)
    return im2col(index + 1, kh, kw, stride, padding) - 1


def flatten_gather(batch: int, channels: int, h: int, w: int, layout: str = "nhwc") -> np.ndarray:
    """``batch x (channels*h*w)`` table reading an NCHW flatten from a tensor stored in ``layout``."""
    b, c, y, x = np.meshgrid(np.arange(batch), np.arange(channels), np.arange(h), np.arange(w), indexing="ij")
    return _source_index(layout, b, c, y, x, channels, h, w).reshape(batch, -1).astype(np.int64)
