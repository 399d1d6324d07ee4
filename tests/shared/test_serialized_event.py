"""Pre-serialized envelopes parse back as the same Envelope shape `new_event` builds."""

from __future__ import annotations

import uuid

from shouwang_shared.envelope import Envelope, fast_event_id, fast_event_ids, new_event, serialized_event


def test_a_serialized_event_parses_as_an_envelope_with_causation_and_correlation():
    cause = new_event(source="/services/intel", type="shouwang.intel.tip_submitted.v1", subject="t1", data={}, correlation_id="corr-1")
    fast = serialized_event(source="/services/rewards", type="shouwang.rewards.x.v1", subject="volunteer:甲", data={"金额": 1.5}, caused_by=cause)
    parsed = Envelope.from_bytes(fast.to_bytes())
    assert parsed.id == fast.id and uuid.UUID(parsed.id).version == 7
    assert parsed.subject == "volunteer:甲" and parsed.data == {"金额": 1.5}
    assert parsed.correlationid == "corr-1" and parsed.causationid == cause.id
    assert parsed.time.tzinfo is not None


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
