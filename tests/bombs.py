"""Hostile compressed inputs built cheaply: a gzip bomb of any expanded size in milliseconds."""

from __future__ import annotations

import struct
import zlib

_BLOCK = 1 << 20
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def gzip_bomb(expanded_mib: int, *, valid_trailer: bool = False) -> bytes:
    """A gzip member that expands to ``expanded_mib`` MiB of zeros.

    After a full flush deflate starts afresh, so every further MiB of zeros compresses to the
    same ~1 kB: the body is that block repeated, not compressed ``expanded_mib`` times. The CRC32
    of the trailer costs a pass over the expanded size, so it is computed only on request (a
    bounded reader stops long before the trailer; ``gzip.decompress`` checks it only at the end).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(_BLOCK)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    body = first + repeated * (expanded_mib - 1) + compressor.flush()
    crc = 0
    if valid_trailer:
        for _ in range(expanded_mib):
            crc = zlib.crc32(zeros, crc)
    size = (expanded_mib * _BLOCK) & 0xFFFFFFFF
    return _GZIP_HEADER + body + struct.pack("<II", crc, size)
