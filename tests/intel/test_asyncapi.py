"""The published liaison contract: up to date with the models, and real events validate against its schemas."""

from __future__ import annotations

from datetime import UTC, datetime

import jsonschema
import yaml

from shouwang_shared.contracts.intel import CaseForwarded, LiaisonPlace
from shouwang_shared.contracts.police import DispositionRecorded
from shouwang_shared.envelope import new_event

from intel import asyncapi


def _validator(document: dict, message: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/messages/{message}/payload", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_document_on_disk_is_generated_from_the_current_models():
    assert asyncapi.DOCUMENT.read_text(encoding="utf-8") == asyncapi.render(), "run `uv run python -m intel.asyncapi`"


def test_events_validate_against_the_published_schemas_and_bad_ones_do_not():
    document = yaml.safe_load(asyncapi.DOCUMENT.read_text(encoding="utf-8"))
    assert document["asyncapi"].startswith("3.")
    assert document["channels"]["liaisonCases"]["address"] == "intel.liaison.v1"
    now = datetime.now(UTC)
    forwarded = new_event(
        source=CaseForwarded.SOURCE, type=CaseForwarded.TYPE, subject="c1",
        data=CaseForwarded(
            case_id="c1", reference="SW-2026-000001", category="drugs", priority="urgent", summary="桥头有人贩毒",
            place=LiaisonPlace(lat=29.8, lon=120.0, text="白石镇"), tip_count=2, informant_pseudonyms=["线人-ABCDEFGH"],
            forwarded_at=now, sla_due_at=now,
        ),
    ).model_dump(mode="json")
    _validator(document, "CaseForwarded").validate(forwarded)
    for message in ("CaseForwarded", "DispositionRecorded", "DispositionRecordedV2"):
        example = document["components"]["messages"][message]["examples"][0]["payload"]
        _validator(document, message).validate(example)
    answer = new_event(
        source="/police/x", type=DispositionRecorded.TYPE, subject="c1",
        data=DispositionRecorded(case_id="c1", disposition="arrest", recorded_at=now),
    ).model_dump(mode="json")
    validator = _validator(document, "DispositionRecorded")
    validator.validate(answer)
    bad = {**answer, "data": {**answer["data"], "disposition": "shot_on_sight"}}
    assert not validator.is_valid(bad)
    assert not validator.is_valid({**answer, "type": CaseForwarded.TYPE})
