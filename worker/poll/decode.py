"""Undo a response's Content-Encoding (gzip, deflate, brotli) in bounded steps.

``worker.poll.fetch`` turns aiohttp's own decoding off and feeds the raw body through
``BodyDecoder``, so a compression bomb fails at ``limit`` bytes of output instead of
inflating in memory: each step decompresses at most ``CHUNK`` bytes.
"""

from __future__ import annotations

import zlib
from typing import Any

import brotli

from worker.errors import FailureReason, FeedError

__all__ = ["CHUNK", "BodyDecoder"]

CHUNK = 64 * 1024


class BodyDecoder:
    """Decode a Content-Encoding in bounded steps, failing once output exceeds ``limit``."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.parts: list[bytes] = []
        self.encoding = encoding
        self._zlib: Any = None
        self._brotli: Any = None
        self._sniff = encoding == "deflate"
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        elif encoding == "br":
            self._brotli = brotli.Decompressor()
        elif encoding not in ("", "identity"):
            raise FeedError(
                f"unsupported Content-Encoding {encoding!r}", reason=FailureReason.DECODE
            )

    def _add(self, out: bytes) -> None:
        self.size += len(out)
        if self.size > self.limit:
            raise FeedError(
                f"body exceeds {self.limit} bytes after decoding", reason=FailureReason.TOO_LARGE
            )
        if out:
            self.parts.append(out)

    def feed(self, data: bytes) -> None:
        try:
            if self._zlib is not None:
                if self._sniff and data:  # "deflate" is often sent raw, without a zlib header
                    self._sniff = False
                    if data[0] & 0x0F != 8:
                        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                while data:
                    self._add(self._zlib.decompress(data, CHUNK))
                    data = self._zlib.unconsumed_tail
            elif self._brotli is not None:
                self._add(self._brotli.process(data, output_buffer_limit=CHUNK))
                while not self._brotli.can_accept_more_data():
                    self._add(self._brotli.process(b"", output_buffer_limit=CHUNK))
            else:
                self._add(data)
        except (zlib.error, brotli.error) as exc:
            raise FeedError(
                f"corrupt {self.encoding} body: {exc}", reason=FailureReason.DECODE
            ) from None

    def finish(self) -> bytes:
        if self._zlib is not None:
            self._add(self._zlib.flush())
        return b"".join(self.parts)
