"""Reading gzip'd IDX files, the format of LeCun et al.'s MNIST page (and Fashion-MNIST).

IDX: 2 zero bytes, a type byte (0x08 = unsigned byte), a byte with the number of dims, then
one big-endian uint32 per dim, then the data in C order.

Why not torchvision's reader (``torchvision.datasets.mnist.read_image_file``, which
``cvr-solo data fashion-mnist --download`` uses through ``FashionMNIST``): it opens only
uncompressed files, so the Debian package's ``.gz`` files would first be unpacked to disk,
and it checks a file with bare asserts, so a truncated or wrong file gives an
``AssertionError`` instead of a message naming the file and the fix.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDX_UBYTE", "read_idx"]

#: IDX element type of unsigned bytes.
IDX_UBYTE = 0x08


def read_idx(path: str | Path, ndim: int, fix: str = "") -> np.ndarray:
    """The unsigned-byte array of the gzip'd IDX file ``path`` with ``ndim`` dims.

    Args:
        path: the ``.gz`` file.
        ndim: the number of dims the file must have.
        fix: what to tell the user when the file is corrupt (e.g. how to reinstall it).

    Returns:
        A read-only uint8 array of the header's shape.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when it is not gzip, has a bad magic number, or its data
            is truncated or overlong.

    Example:
        >>> import gzip, struct, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.gz"
        >>> _ = p.write_bytes(gzip.compress(struct.pack(">HBBI", 0, 8, 1, 3) + bytes([1, 2, 3])))
        >>> read_idx(p, 1).tolist()
        [1, 2, 3]
    """
    path = Path(path)
    hint = f"; {fix}" if fix else ""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable gzip file ({exc}); the source is corrupt"
                         f"{hint}") from exc
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is corrupt: {len(raw)} bytes is shorter than an IDX header")
    zero, dtype_code, got_ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != IDX_UBYTE or got_ndim != ndim:
        raise ValueError(f"{path} is corrupt: IDX magic number {raw[:4].hex()} is not "
                         f"0000{IDX_UBYTE:02x}{ndim:02x} (ubyte, {ndim} dims)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims)
    if len(raw) - header != expected:
        raise ValueError(f"{path} is corrupt: header dims {dims} need {expected} data bytes, "
                         f"the file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
