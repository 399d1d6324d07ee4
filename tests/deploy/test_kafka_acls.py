"""The KafkaUsers the deployment declares are enough, and no more: every service authenticates with SCRAM as its
own user on a broker that enforces ACLs, the ACLs are the ones generated for Strimzi, and a tip still becomes a
reward end to end; the reference police consumer, as the police user, reads the forwarded case and its answer,
once an analyst confirms it, pays the case reward; a service's credentials cannot write another service's topic,
and the police user cannot read anything but the liaison feed."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import manifests
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest

from shouwang_dev.stack.platform import start_platform
from shouwang_dev.testing import eventually, start_test_stack, stop_test_stack

from bench.chaos import police_consumer_module
from tests.e2e.journey import (
    bearer,
    build_county,
    confirm_police_answers,
    expect,
    forward_case,
    ledger_entries,
    police_answers,
    register_volunteer,
)

# Kafka protocol codes (org.apache.kafka.common.resource / acl)
RESOURCE = {"topic": 2, "group": 3, "cluster": 4}
PATTERN = {"literal": 3, "prefix": 4}
OPERATION = {"All": 2, "Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7, "Describe": 8,
             "ClusterAction": 9, "DescribeConfigs": 10, "AlterConfigs": 11, "IdempotentWrite": 12}
ALLOW = 3


def prefixed(name: str, prefix: str) -> str:
    """A resource name under the test's topic/group prefix ("*" stays the wildcard)."""
    return name if name == "*" else prefix + name


async def grant(bootstrap_servers: str, principal: str, acls: list[dict], prefix: str) -> None:
    """Create the Strimzi-style `acls` for `User:principal` through the operator listener (CreateAcls)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        for rule in acls:
            resource = rule["resource"]
            for operation in rule["operations"]:
                request = CreateAclsRequest(
                    RESOURCE[resource["type"]], prefixed(resource["name"], prefix), PATTERN[resource.get("patternType", "literal")],
                    f"User:{principal}", "*", OPERATION[operation], ALLOW)
                response = await admin._send_request(request)  # aiokafka has the request, not yet a public create_acls
                errors = [(code, msg) for code, msg in response.creation_responses if code]
                assert not errors, f"CreateAcls for {principal} {resource} {operation}: {errors}"
    finally:
        await admin.close()


def scram(stack, user: str, password: str) -> dict:
    """aiokafka client options of one SCRAM user on the broker's SASL listener."""
    return {"bootstrap_servers": stack.kafka.sasl_bootstrap_servers, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user, "sasl_plain_password": password}


async def test_services_run_as_their_own_kafka_users_with_only_the_generated_acls():
    passwords = {name: secrets.token_hex(12) for name in (*manifests.SERVICE_NAMES, manifests.POLICE_USER)}
    stack = await asyncio.to_thread(start_test_stack, private=True, kafka_scram_users=passwords)
    try:
        prefix = stack.new_prefix()
        for service in manifests.SERVICE_NAMES:
            await grant(stack.bootstrap_servers, service, manifests.service_user(service)["spec"]["authorization"]["acls"], prefix)
        await grant(stack.bootstrap_servers, manifests.POLICE_USER, manifests.police_user()["spec"]["authorization"]["acls"], prefix)
        as_user = {service: {"KAFKA_BOOTSTRAP_SERVERS": stack.kafka.sasl_bootstrap_servers, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                             "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": service,
                             "KAFKA_SASL_PASSWORD": passwords[service]} for service in manifests.SERVICE_NAMES}
        platform = await start_platform(stack, extra_env=as_user, prefix=prefix)
        try:
            async with platform.client() as client:
                county = await build_county(platform, client)
                reporter = await register_volunteer(client, county)
                expect(await client.post("/api/v1/tips", headers=bearer(reporter.token), json={
                    "category": "fraud", "text": "菜市场门口有人冒充社保局工作人员收取“认证费”，已有老人被骗",
                    "lat": 30.2501, "lon": 120.1702, "idempotency_key": f"acl-{uuid.uuid4()}"}), 202)

                async def credited():
                    return [e for e in await ledger_entries(client, reporter.token) if e.get("amount", 0) > 0] or None

                await eventually(credited, timeout_s=60, message="reporting points, every hop as its own Kafka user")

                analyst = bearer(county.analyst_token)

                async def open_case():
                    return expect(await client.get("/api/v1/cases", headers=analyst, params={"status": "new"}), 200) or None

                case_id = (await eventually(open_case, timeout_s=30, message="the tip's case"))[0]["case_id"]
                await forward_case(client, county.analyst_token, case_id, summary="冒充社保局收费")
                police = police_consumer_module()
                answered = await police.answer_forwarded_cases(
                    stack.kafka.sasl_bootstrap_servers, answer="arrest", prefix=prefix, group_id=manifests.POLICE_GROUP,
                    once=True, idle_timeout_s=3, client_options=police.security_options(
                        "SASL_PLAINTEXT", username=manifests.POLICE_USER, password=passwords[manifests.POLICE_USER]))
                assert answered == [case_id]
                await confirm_police_answers(client, county.analyst_token, case_id, await police_answers(client, county.analyst_token, case_id))

                async def case_reward():
                    return [e for e in await ledger_entries(client, reporter.token) if e.get("rule_line", "").startswith("case.reward")] or None

                await eventually(case_reward, timeout_s=60, message="the case reward after the police user's answer")
            for svc in platform.services.values():
                log = svc.log_path.read_text(errors="replace")
                assert "AuthorizationFailed" not in log and "SaslAuthenticationFailed" not in log, f"{svc.definition.name}: {log[-2000:]}"
        finally:
            platform.stop()

        rewards = AIOKafkaProducer(**scram(stack, "rewards", passwords["rewards"]), acks="all", request_timeout_ms=5000)
        await rewards.start()
        try:
            with pytest.raises(KafkaError):
                await rewards.send_and_wait(f"{prefix}intel.tips.v1", b"{}")
        finally:
            await rewards.stop()
        police = AIOKafkaConsumer(f"{prefix}intel.tips.v1", **scram(stack, manifests.POLICE_USER, passwords[manifests.POLICE_USER]),
                                  group_id=f"{prefix}{manifests.POLICE_GROUP}", enable_auto_commit=False, auto_offset_reset="earliest")
        try:
            with pytest.raises(KafkaError):  # refused when it joins (metadata) or at the latest when it fetches
                await police.start()
                await asyncio.wait_for(police.getmany(timeout_ms=3000), 20)
        finally:
            await police.stop()
    finally:
        await asyncio.to_thread(stop_test_stack, stack)
