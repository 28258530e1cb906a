"""A byte-stable ``.npz`` writer, shared by everything that ships arrays inside the package (zoo weights, the
converted citation graphs).

Why not ``np.savez``: numpy stamps the current time into each zip member, so writing the same arrays twice gives
different bytes, and a regenerated file could never be checked against the shipped one. Here timestamps,
member order and permissions are fixed, so the same arrays always give the same bytes.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A ``.npz`` (readable by ``np.load(allow_pickle=False)``) with fixed timestamps and order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()
