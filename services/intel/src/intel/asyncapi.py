"""The police liaison contract as an AsyncAPI 3 document, generated from the pydantic contract models.

`python -m intel.asyncapi` rewrites docs/asyncapi/liaison.yaml; a test checks the file is up to date.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from shouwang_shared.contracts import EventPayload
from shouwang_shared.contracts.intel import CaseForwarded
from shouwang_shared.contracts.police import DispositionRecorded, DispositionRecordedV2
from shouwang_shared.envelope import Envelope

DOCUMENT = Path(__file__).resolve().parents[4] / "docs" / "asyncapi" / "liaison.yaml"
REF = "#/components/schemas/{model}"
VERSION = "1.1.0"


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict:
    """JSON Schema of `model` with its nested models moved to components/schemas; returns a $ref to it."""
    schema = model.model_json_schema(ref_template=REF, mode="serialization")
    for name, nested in schema.pop("$defs", {}).items():
        schemas[name] = nested
    schemas[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _envelope_schema(schemas: dict[str, Any]) -> dict:
    schema = Envelope.model_json_schema(ref_template=REF, mode="serialization")
    schema["description"] = (
        "The envelope every event travels in (CloudEvents 1.0 attribute names). `id` is the de-duplication key: "
        "process each id once. `subject` is the case id. Unknown fields must be ignored."
    )
    schemas["Envelope"] = schema
    return {"$ref": REF.format(model="Envelope")}


def _message(payload: type[EventPayload], schemas: dict[str, Any], *, title: str, summary: str, example: dict) -> dict:
    data_ref = _schema(payload, schemas)
    envelope_ref = _envelope_schema(schemas)
    return {
        "name": payload.__name__,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                "ce_id": {"type": "string", "description": "the envelope id (UTF-8 bytes)"},
                "ce_type": {"type": "string", "const": payload.TYPE},
                "correlation_id": {"type": "string"},
            },
        },
        "payload": {
            "allOf": [
                envelope_ref,
                {
                    "type": "object",
                    "required": ["type", "data", "subject"],
                    "properties": {"type": {"const": payload.TYPE}, "data": data_ref},
                },
            ]
        },
        "bindings": {"kafka": {"key": {"type": "string", "description": "the case id: one case's events stay in order"}, "bindingVersion": "0.5.0"}},
        "examples": [{"name": "example", "payload": example}],
    }


def build_document() -> dict:
    """The AsyncAPI 3.0 document of the liaison feed and the police dispositions it expects back."""
    schemas: dict[str, Any] = {}
    forwarded_example = {
        "specversion": "1.0", "id": "7d9f4c1e-0f7e-4d47-9a53-2b1f1f0f9b10", "source": CaseForwarded.SOURCE, "type": CaseForwarded.TYPE,
        "time": "2026-11-28T09:00:00Z", "subject": "5b0c7d3e-8a1f-4f65-b1c2-0d7e6f5a4b3c", "datacontenttype": "application/json",
        "data": {
            "case_id": "5b0c7d3e-8a1f-4f65-b1c2-0d7e6f5a4b3c", "reference": "SW-2026-000123", "category": "fraud", "priority": "high",
            "summary": "17012345678冒充公安局民警，称涉嫌洗钱要求转账到安全账户", "place": {"lat": 29.871, "lon": 119.941, "text": "城关镇和平社区"},
            "first_seen_at": "2026-11-28T07:30:00Z", "tip_count": 3, "informant_pseudonyms": ["线人-7KQ2M9XA", "线人-P3RT8WZC"],
            "forwarded_at": "2026-11-28T09:00:00Z", "sla_due_at": "2026-11-29T09:00:00Z",
        },
        "correlationid": None, "causationid": None,
    }
    disposition_example = {
        "specversion": "1.0", "id": "a3e1c2b4-5d6f-4a7b-8c9d-0e1f2a3b4c5d", "source": "/police/county-bureau", "type": DispositionRecorded.TYPE,
        "time": "2026-11-29T10:00:00Z", "subject": "5b0c7d3e-8a1f-4f65-b1c2-0d7e6f5a4b3c", "datacontenttype": "application/json",
        "data": {
            "case_id": "5b0c7d3e-8a1f-4f65-b1c2-0d7e6f5a4b3c", "reference": "SW-2026-000123", "disposition": "arrest",
            "note": "嫌疑人已抓获", "officer_unit": "城关派出所", "recorded_at": "2026-11-29T10:00:00Z",
        },
        "correlationid": None, "causationid": "7d9f4c1e-0f7e-4d47-9a53-2b1f1f0f9b10",
    }
    disposition_v2_example = {
        **disposition_example, "id": "c5f2d3e4-6a7b-4c8d-9e0f-1a2b3c4d5e6f", "type": DispositionRecordedV2.TYPE,
        "data": {
            **disposition_example["data"], "note": "抓获犯罪嫌疑人3名，其中网上逃犯1名，捣毁窝点1处",
            "counts": {
                "suspects_caught": 3, "fugitives_caught": 1, "dens_closed": 1,
                "seizures": [{"kind": "cash", "quantity": 52000, "unit": "yuan", "description": None},
                             {"kind": "phones", "quantity": 14, "unit": "piece", "description": "作案手机"}],
            },
        },
    }
    forwarded = _message(
        CaseForwarded, schemas, title="案件移交 Case forwarded",
        summary="A verified case handed to the police. Sanitized: informants appear only as per-case pseudonyms.",
        example=forwarded_example,
    )
    disposition = _message(
        DispositionRecorded, schemas, title="处置结果 Disposition recorded",
        summary="The police answer to a forwarded case: acknowledged, investigating, arrest, case_solved or unfounded.",
        example=disposition_example,
    )
    disposition_v2 = _message(
        DispositionRecordedV2, schemas, title="处置结果（含战果） Disposition recorded with outcome counts",
        summary=(
            "The police answer with what it achieved: suspects and fugitives caught, dens closed, seizures (the case's totals "
            "so far). Sent on the same topic as v1; both are accepted."
        ),
        example=disposition_v2_example,
    )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "守望 Shouwang police liaison feed",
            "version": VERSION,
            "description": (
                "Cases the county volunteer alliance forwards to police liaison systems, and the dispositions the police send back.\n\n"
                "- Read `intel.liaison.v1` as your own consumer group; the key is the case id. Delivery is at least once: "
                "de-duplicate on the envelope `id`.\n"
                "- Answer on `police.dispositions.v1` with an envelope whose `type` is "
                f"`{DispositionRecorded.TYPE}`, or `{DispositionRecordedV2.TYPE}` to report outcome counts, `subject` the case "
                "id and `source` your system, `/police/<system>` (e.g. `/police/county-bureau`; letters, digits, `.`, `_`, `-`, "
                "at most 64).\n"
                "- A v2 answer's `counts` are the case's totals as of `recorded_at` (suspects caught, fugitives caught, dens closed, "
                "seizures), not increments: a later answer repeats and extends them. Counts are whole numbers from 0 (at most "
                "10,000 people, 1,000 dens); at most 20 seizure lines, one per kind and unit, each quantity above 0. An "
                "`acknowledged` or `unfounded` answer carries no counts.\n"
                "- `recorded_at` carries its UTC offset; an answer dated more than 5 minutes in the future or before the case was "
                "forwarded is refused, one within 5 minutes is counted at the nearer bound. At most 50 answers per case.\n"
                "- An answer is shown to the alliance's analysts as received; it sets the case outcome once an analyst confirms it.\n"
                "- A malformed answer, any other event type, or another `source` is dead-lettered by Shouwang with the reason; "
                "the feed goes on.\n"
                "- Informants are never identified: no names, ID numbers, phones or receipt codes travel on this feed.\n"
                "- Topic names carry an optional deployment prefix (tests and demos isolate themselves with one)."
            ),
            "contact": {"name": "Shouwang intel team"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "kafka-bootstrap.shouwang.svc:9093", "protocol": "kafka-secure",
                "description": "Strimzi Kafka; each police system gets a KafkaUser whose ACLs allow reading intel.liaison.v1 and writing police.dispositions.v1 only.",
                "security": [{"$ref": "#/components/securitySchemes/scramSha512"}],
            },
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "the single-node broker of `make dev`"},
        },
        "channels": {
            "liaisonCases": {
                "address": CaseForwarded.TOPIC, "title": "Forwarded cases",
                "messages": {"caseForwarded": {"$ref": "#/components/messages/CaseForwarded"}},
            },
            "policeDispositions": {
                "address": DispositionRecorded.TOPIC, "title": "Police dispositions",
                "messages": {
                    "dispositionRecorded": {"$ref": "#/components/messages/DispositionRecorded"},
                    "dispositionRecordedV2": {"$ref": "#/components/messages/DispositionRecordedV2"},
                },
            },
        },
        "operations": {
            "sendForwardedCase": {
                "action": "send", "channel": {"$ref": "#/channels/liaisonCases"},
                "summary": "Shouwang publishes each forwarded case (through its outbox: retried until the broker acknowledges).",
                "messages": [{"$ref": "#/channels/liaisonCases/messages/caseForwarded"}],
            },
            "receiveDisposition": {
                "action": "receive", "channel": {"$ref": "#/channels/policeDispositions"},
                "summary": "Shouwang attaches each disposition to its case; an arrest or case_solved triggers the one per-case reward.",
                "messages": [
                    {"$ref": "#/channels/policeDispositions/messages/dispositionRecorded"},
                    {"$ref": "#/channels/policeDispositions/messages/dispositionRecordedV2"},
                ],
            },
        },
        "components": {
            "messages": {"CaseForwarded": forwarded, "DispositionRecorded": disposition, "DispositionRecordedV2": disposition_v2},
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"scramSha512": {"type": "scramSha512", "description": "SASL/SCRAM-SHA-512 over TLS"}},
        },
    }


def render() -> str:
    """The document as YAML text (UTF-8, Chinese kept as is)."""
    header = "# Generated by `python -m intel.asyncapi` from shouwang_shared.contracts; do not edit by hand.\n"
    return header + yaml.safe_dump(build_document(), allow_unicode=True, sort_keys=False, width=120)


def main() -> None:
    """Write docs/asyncapi/liaison.yaml (or the path given)."""
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
