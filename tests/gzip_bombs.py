"""Gzip bodies that expand far beyond their size, for the tests and the benchmark of bad input
(``tests/tsdb/test_bad_input.py``, ``benchmarks/bad_input.py``)."""

from __future__ import annotations

import struct
import zlib

#: A gzip member's header: deflate, no name or time, maximum compression, unknown OS.
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def gzip_of(block: bytes, copies: int) -> bytes:
    """``block * copies`` gzip-compressed, without ever holding the expanded bytes.

    The block is compressed once: after a full flush deflate forgets what came before, so every copy compresses
    to the same bytes, and only the CRC has to read each copy. Compressing all the copies took about 1.1 s per
    256 MiB at level 9; this takes 0.1 s, for about the same size (265 KB instead of 261 KB for 256 MiB of zeros).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the gzip framing is written here
    once = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()
    crc = 0
    for _ in range(copies):
        crc = zlib.crc32(block, crc)
    return _HEADER + once * copies + end + struct.pack("<II", crc, len(block) * copies & 0xFFFFFFFF)
