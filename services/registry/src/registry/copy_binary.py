"""PostgreSQL's binary COPY format for the column types a roster import writes (encoded in worker processes). Pure."""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from itertools import accumulate

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
NULL = struct.pack("!i", -1)
TEXT_OID = 25
_EPOCH = date(2000, 1, 1).toordinal()
_int32 = struct.Struct("!i").pack
_field_count = struct.Struct("!h").pack
_float8 = struct.Struct("!id").pack
_int16 = struct.Struct("!ih").pack
_int64 = struct.Struct("!iq").pack
_date = struct.Struct("!ii").pack
_array_head = struct.Struct("!iiiii").pack
TRUE, FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"


def field_count(count: int) -> bytes:
    """The start of a tuple of `count` fields."""
    return _field_count(count)


def text(value: str | None) -> bytes:
    """A text field (UTF-8)."""
    if value is None:
        return NULL
    raw = value.encode()
    return _int32(len(raw)) + raw


def bytea(value: bytes) -> bytes:
    """A bytea field."""
    return _int32(len(value)) + value


def uuid_text(value: str | None) -> bytes:
    """A uuid field from its canonical text form."""
    if value is None:
        return NULL
    return b"\x00\x00\x00\x10" + bytes.fromhex(value.replace("-", ""))


def float8(value: float | None) -> bytes:
    """A double precision field."""
    return NULL if value is None else _float8(8, value)


def int2(value: int) -> bytes:
    """A smallint field."""
    return _int16(2, value)


def int8(value: int) -> bytes:
    """A bigint field."""
    return _int64(8, value)


def boolean(value: bool) -> bytes:
    """A boolean field."""
    return TRUE if value else FALSE


def day(value: date) -> bytes:
    """A date field (days since 2000-01-01)."""
    return _date(4, value.toordinal() - _EPOCH)


def text_array(values: list[str]) -> bytes:
    """A one-dimensional text[] field without NULLs."""
    if not values:
        body = _int32(0) + _int32(0) + _int32(TEXT_OID)
    else:
        body = _array_head(1, 0, TEXT_OID, len(values), 1) + b"".join(text(v) for v in values)
    return _int32(len(body)) + body


def jsonb(serialized: str) -> bytes:
    """A jsonb field from JSON text (format version 1)."""
    raw = b"\x01" + serialized.encode()
    return _int32(len(raw)) + raw


@dataclass
class EncodedRows:
    """Tuples already encoded, side by side in one buffer, with where each ends: cheap to hand between processes."""

    data: bytes
    ends: array

    @classmethod
    def join(cls, rows: list[bytes]) -> EncodedRows:
        """The rows in one buffer."""
        return cls(b"".join(rows), array("Q", accumulate(map(len, rows))))

    def __len__(self) -> int:
        return len(self.ends)

    def pick(self, positions: list[int]) -> EncodedRows:
        """The rows at `positions`, in that order."""
        ends, data = self.ends, self.data
        return EncodedRows.join([data[(ends[n - 1] if n else 0):ends[n]] for n in positions])

    def copy_parts(self, size: int = 1 << 18) -> Iterator[bytes | memoryview]:
        """A whole binary COPY stream of these rows: the header, the tuples in slices of `size` bytes (views, not
        copies), the trailer. Slices that stay in the CPU's cache: the driver copies each into a message and the
        kernel into the socket, where one piece's megabytes at once went through memory twice more."""
        yield HEADER
        view = memoryview(self.data)
        for start in range(0, len(view), size):
            yield view[start:start + size]
        yield TRAILER
