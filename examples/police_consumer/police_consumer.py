"""Reference police consumer for the Shouwang liaison feed (a starting point for a police team).

Reads forwarded cases from `intel.liaison.v1` as its own consumer group, shows them, and can answer
each one on `police.dispositions.v1` with a disposition envelope. Needs only `aiokafka`; the
contract is docs/asyncapi/liaison.yaml.

    python police_consumer.py --bootstrap 127.0.0.1:9092 --answer acknowledged          # keep running
    python police_consumer.py --bootstrap 127.0.0.1:9092 --answer arrest --once         # answer what is there, exit
    python police_consumer.py --answer arrest --suspects 3 --fugitives 1 --dens 1 --seizure cash:52000:yuan --once  # v2, with counts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

LIAISON_TOPIC = "intel.liaison.v1"
DISPOSITIONS_TOPIC = "police.dispositions.v1"
CASE_FORWARDED = "shouwang.intel.case_forwarded.v1"
DISPOSITION_RECORDED = "shouwang.police.disposition_recorded.v1"
DISPOSITION_RECORDED_V2 = "shouwang.police.disposition_recorded.v2"  # v1 plus `counts`: what the answer achieved
DISPOSITIONS = ("acknowledged", "investigating", "arrest", "case_solved", "unfounded")


def outcome_counts(*, suspects: int = 0, fugitives: int = 0, dens: int = 0, seizures: list[str] = ()) -> dict:
    """The `counts` of a v2 answer; each seizure is written `kind:quantity:unit` (e.g. `drugs:35.5:g`, `cash:52000:yuan`)."""
    lines = []
    for item in seizures:
        kind, quantity, unit = item.split(":", 2)
        lines.append({"kind": kind, "quantity": float(quantity), "unit": unit})
    return {"suspects_caught": suspects, "fugitives_caught": fugitives, "dens_closed": dens, "seizures": lines}


def disposition_envelope(
    case: dict, *, disposition: str, source: str, officer_unit: str | None, note: str | None, caused_by: str | None,
    counts: dict | None = None,
) -> dict:
    """The envelope answering one forwarded case (CloudEvents attribute names, as the contract says): v2 when `counts` are given."""
    now = datetime.now(UTC).isoformat()
    data = {
        "case_id": case["case_id"], "reference": case.get("reference"), "disposition": disposition,
        "note": note, "officer_unit": officer_unit, "recorded_at": now,
    }
    if counts is not None:
        data["counts"] = counts
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": DISPOSITION_RECORDED if counts is None else DISPOSITION_RECORDED_V2,
        "time": now,
        "subject": case["case_id"],
        "datacontenttype": "application/json",
        "data": data,
        "correlationid": None,
        "causationid": caused_by,
    }


async def answer_forwarded_cases(
    bootstrap_servers: str,
    *,
    answer: str | None,
    prefix: str = "",
    group_id: str = "police-reference-consumer",
    source: str = "/police/reference-consumer",
    officer_unit: str | None = None,
    note: str | None = None,
    counts: dict | None = None,
    once: bool = True,
    idle_timeout_s: float = 5.0,
    on_case=None,
    client_options: dict | None = None,
) -> list[str]:
    """Read forwarded cases (from the group's committed offset) and answer each with `answer`; returns the case ids seen.

    With `counts` (see `outcome_counts`) each answer is a v2 answer reporting them.
    With `once`, stop when the feed has been idle for `idle_timeout_s`; otherwise run until cancelled.
    `client_options` are aiokafka security settings (see `security_options`), the same for consumer and producer.
    Offsets are committed only after the answers are acknowledged, so a crash re-reads, never skips.
    """
    if answer is not None and answer not in DISPOSITIONS:
        raise ValueError(f"answer must be one of {DISPOSITIONS}")
    consumer = AIOKafkaConsumer(
        prefix + LIAISON_TOPIC, bootstrap_servers=bootstrap_servers, group_id=prefix + group_id,
        enable_auto_commit=False, auto_offset_reset="earliest", **(client_options or {}),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", **(client_options or {}))
    await consumer.start()
    await producer.start()
    seen: list[str] = []
    answered_events: set[str] = set()
    loop = asyncio.get_running_loop()
    last_activity = loop.time()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=200)
            if not batch:
                if once and loop.time() - last_activity > idle_timeout_s:
                    break
                continue
            last_activity = loop.time()
            for messages in batch.values():
                for msg in messages:
                    try:
                        event = json.loads(msg.value)
                    except ValueError:
                        print(f"skipping a message that is not JSON at offset {msg.offset}", file=sys.stderr)
                        continue
                    if event.get("type") != CASE_FORWARDED or event.get("id") in answered_events:
                        continue  # ignore other types; at-least-once delivery: de-duplicate on the envelope id
                    case = event["data"]
                    seen.append(case["case_id"])
                    if on_case:
                        on_case(case)
                    if answer:
                        reply = disposition_envelope(
                            case, disposition=answer, source=source, officer_unit=officer_unit, note=note, caused_by=event["id"], counts=counts,
                        )
                        await producer.send_and_wait(prefix + DISPOSITIONS_TOPIC, key=case["case_id"].encode(), value=json.dumps(reply, ensure_ascii=False).encode())
                    answered_events.add(event["id"])
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    return seen


def security_options(protocol: str, *, cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None,
                     sasl_mechanism: str = "SCRAM-SHA-512", username: str | None = None, password: str | None = None) -> dict:
    """aiokafka settings for the cluster's listener: mutual TLS (`SSL` + your KafkaUser's certificate, as in production),
    or SASL (`SASL_SSL` / `SASL_PLAINTEXT`) with a user name and password."""
    if protocol == "PLAINTEXT":
        return {}
    options: dict = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(cafile=cafile, certfile=certfile, keyfile=keyfile)
    if protocol.startswith("SASL_"):
        options |= {"sasl_mechanism": sasl_mechanism, "sasl_plain_username": username, "sasl_plain_password": password}
    return options


def _show(case: dict) -> None:
    place = case.get("place") or {}
    print(
        f"[{case['priority']}] {case['reference']} {case['category']} 线索{case['tip_count']}条 "
        f"地点:{place.get('text') or ''}({place.get('lat')},{place.get('lon')}) 时限:{case['sla_due_at']}\n"
        f"    {case['summary']}\n    线人:{', '.join(case['informant_pseudonyms'])}"
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Shouwang reference police consumer")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--prefix", default="", help="topic prefix of the deployment (empty in production)")
    parser.add_argument("--group", default="police-reference-consumer", help="consumer group id")
    parser.add_argument("--source", default="/police/reference-consumer", help="envelope source naming your system")
    parser.add_argument("--answer", choices=DISPOSITIONS, help="answer every case read with this disposition")
    parser.add_argument("--unit", dest="officer_unit", help="officer unit named in the answer, e.g. 城关派出所")
    parser.add_argument("--note", help="note sent with the answer")
    parser.add_argument("--suspects", type=int, help="suspects caught so far (sends a v2 answer with counts)")
    parser.add_argument("--fugitives", type=int, help="wanted fugitives caught so far (v2)")
    parser.add_argument("--dens", type=int, help="dens closed so far (v2)")
    parser.add_argument("--seizure", action="append", default=[], metavar="KIND:QUANTITY:UNIT",
                        help="a seizure line, repeatable, e.g. drugs:35.5:g or cash:52000:yuan (v2)")
    parser.add_argument("--once", action="store_true", help="stop once the feed is idle instead of running forever")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of silence that end a --once run")
    parser.add_argument("--security-protocol", default="PLAINTEXT", choices=("PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"),
                        help="SSL = mutual TLS with your KafkaUser's certificate (production)")
    parser.add_argument("--ssl-cafile", help="the cluster CA certificate (ca.crt)")
    parser.add_argument("--ssl-certfile", help="your client certificate (user.crt of the KafkaUser secret)")
    parser.add_argument("--ssl-keyfile", help="its private key (user.key)")
    parser.add_argument("--sasl-mechanism", default="SCRAM-SHA-512", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    parser.add_argument("--sasl-username", help="SASL user name; the password is read from POLICE_KAFKA_PASSWORD")
    args = parser.parse_args(argv)
    client_options = security_options(
        args.security_protocol, cafile=args.ssl_cafile, certfile=args.ssl_certfile, keyfile=args.ssl_keyfile,
        sasl_mechanism=args.sasl_mechanism, username=args.sasl_username, password=os.environ.get("POLICE_KAFKA_PASSWORD"))
    with_counts = any(v is not None for v in (args.suspects, args.fugitives, args.dens)) or args.seizure
    counts = outcome_counts(suspects=args.suspects or 0, fugitives=args.fugitives or 0, dens=args.dens or 0, seizures=args.seizure) if with_counts else None
    seen = asyncio.run(
        answer_forwarded_cases(
            args.bootstrap, answer=args.answer, prefix=args.prefix, group_id=args.group, source=args.source,
            officer_unit=args.officer_unit, note=args.note, counts=counts, once=args.once, idle_timeout_s=args.idle, on_case=_show,
            client_options=client_options,
        )
    )
    print(json.dumps({"cases": seen, "answered": args.answer}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
