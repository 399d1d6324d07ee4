"""PostgreSQL's binary COPY format for the column types a roster import writes, and `RowEncoder`, which encodes a
named row (a NamedTuple whose field names are the table's columns) field by field. Pure.

Why the import encodes rows itself rather than handing records to asyncpg's `copy_records_to_table`: the worker
processes then send the import's process finished bytes, and it only streams them. Handing named records instead
moved their pickling and the driver's encoding into the one process that also writes; measured on the 100,000-row
bench, the client's CPU per row went from 41 to 69 µs (docs/performance.md, "Roster import: who encodes the COPY").
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from operator import call
from typing import Any, NamedTuple

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


class RowEncoder:
    """Encodes rows of one NamedTuple type as binary COPY tuples: each field by the encoder its column name is given.

    The columns COPY is told are the row type's field names, so a row and its column list cannot disagree; a field
    without an encoder is refused when the encoder is made. Fields named in `repeating` (a roster repeats units,
    teams, statuses, birthdays) are encoded once per distinct value and remembered; those also named in `lists` hold
    lists. The fields are encoded by one `map` over the row (no Python loop per field: the roster import encodes
    ~28 fields for each of up to a million rows).
    """

    def __init__(self, row_type: type[NamedTuple], encoders: Mapping[str, Callable[[Any], bytes]],
                 repeating: frozenset[str] = frozenset(), *, lists: frozenset[str] = frozenset()) -> None:
        self.columns: tuple[str, ...] = row_type._fields
        missing = [name for name in self.columns if name not in encoders]
        if missing:
            raise ValueError(f"no COPY encoder for {', '.join(missing)}")
        self._head = field_count(len(self.columns))
        self._encoders = [_remembered(encoders[name], name in lists) if name in repeating else encoders[name] for name in self.columns]

    def __call__(self, row: tuple) -> bytes:
        """The binary COPY tuple of `row`."""
        return self._head + b"".join(map(call, self._encoders, row))


def _remembered(encode: Callable[[Any], bytes], holds_lists: bool) -> Callable[[Any], bytes]:
    """`encode`, remembering what it gave for each value (a list by its items)."""
    known: dict[Any, bytes] = {}

    def encode_once(value: Any) -> bytes:
        key = tuple(value) if holds_lists else value
        try:
            return known[key]
        except KeyError:
            encoded = known[key] = encode(value)
            return encoded

    return encode_once
