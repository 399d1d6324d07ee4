"""Pre-serialized envelopes parse back as the same Envelope shape `new_event` builds."""

from __future__ import annotations

import uuid

from shouwang_shared.envelope import Envelope, new_event, serialized_event


def test_a_serialized_event_parses_as_an_envelope_with_causation_and_correlation():
    cause = new_event(source="/services/intel", type="shouwang.intel.tip_submitted.v1", subject="t1", data={}, correlation_id="corr-1")
    fast = serialized_event(source="/services/rewards", type="shouwang.rewards.x.v1", subject="volunteer:甲", data={"金额": 1.5}, caused_by=cause)
    parsed = Envelope.from_bytes(fast.to_bytes())
    assert parsed.id == fast.id and uuid.UUID(parsed.id).version == 4
    assert parsed.subject == "volunteer:甲" and parsed.data == {"金额": 1.5}
    assert parsed.correlationid == "corr-1" and parsed.causationid == cause.id
    assert parsed.time.tzinfo is not None
