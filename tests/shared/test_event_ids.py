"""Event ids made fast (one at a time or in bulk) are time-ordered version 7 UUIDs."""

from __future__ import annotations

import uuid

from shouwang_shared.envelope import fast_event_id, fast_event_ids


def test_fast_ids_are_version_7_uuids_in_time_order_with_random_tails():
    ids = [fast_event_id() for _ in range(1000)] + fast_event_ids(1000) + [fast_event_id() for _ in range(1000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(p.version == 7 and p.variant == uuid.RFC_4122 and str(p) == i for p, i in zip(parsed, ids, strict=True))
    millis = [p.int >> 80 for p in parsed]
    assert millis == sorted(millis)
    assert len(set(ids)) == len(ids)


def test_ids_made_at_once_share_their_millisecond_and_differ_in_all_74_random_bits():
    parsed = [uuid.UUID(i) for i in fast_event_ids(4000)]
    assert len({p.int >> 80 for p in parsed}) == 1 and len(set(parsed)) == 4000
    random_bits = ((1 << 76) - 1) ^ (0x3 << 62)  # below the clock and the version, less the variant
    seen = 0
    for p in parsed:
        seen |= p.int & random_bits
    assert seen == random_bits  # every random bit position is set in some id: none is stuck at 0
