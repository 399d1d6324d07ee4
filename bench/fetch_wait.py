"""What a consumer's `fetch_max_wait_ms` costs and buys, on a real broker (`python -m bench.fetch_wait`; not in `make bench`).

For each wait: a consumer of 8 topics × 6 partitions (the gateway's consumer reads 8) with a 5 ms "handler" and a
commit per batch; printed per trial:
- `trickle`: 20 events/s on ONE partition (one reporter), produce → consume latency p50/p90/p99 — the case in which
  aiokafka re-fetches the partition it just handed over only after the fetch in flight for the idle ones returns;
- `spread`: 50 events/s over random keys and topics, the same latencies;
- `burst`: 10,800 events on one topic at once (the summit's offers), drained in 500-record batches with a 20 ms handler;
- `idle`: CPU of the consumer process and of the broker over 10 s with no events.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shouwang_dev.stack.infra import KafkaBroker, free_port
from shouwang_shared.kafka import make_consumer, make_producer

WAITS_MS = (20, 50, 100)


async def _topics(bootstrap: str) -> list[str]:
    """Eight fresh topics of six partitions."""
    topics = [f"fw{uuid.uuid4().hex[:8]}" for _ in range(8)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 6, 1) for t in topics])
    finally:
        await admin.close()
    return topics


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def _trial(bootstrap: str, broker: psutil.Process, wait_ms: int) -> str:
    """One consumer with `wait_ms`: idle CPU, trickle and spread latencies, burst drain time."""
    topics = await _topics(bootstrap)
    producer = make_producer(bootstrap)
    consumer = make_consumer(bootstrap, *topics, group_id=f"fw{uuid.uuid4().hex[:8]}", fetch_max_wait_ms=wait_ms)
    await producer.start()
    await consumer.start()
    try:
        await asyncio.sleep(3)
        me, c0, b0 = psutil.Process(), _cpu(psutil.Process()), _cpu(broker)
        await asyncio.sleep(10)
        idle = f"idle CPU consumer {(_cpu(me) - c0) * 10:.1f} % broker {(_cpu(broker) - b0) * 10:.1f} %"
        sent: dict[bytes, float] = {}
        latencies: list[float] = []
        received = 0

        async def consume(handler_s: float) -> None:
            nonlocal received
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                now = time.perf_counter()
                for records in batch.values():
                    for r in records:
                        received += 1
                        if r.value in sent:
                            latencies.append(now - sent[r.value])
                if batch:
                    await asyncio.sleep(handler_s)
                    await consumer.commit()

        def quantiles() -> str:
            ordered = sorted(latencies)
            q = [1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))] for p in (0.5, 0.9, 0.99)]
            return "p50 {:.1f} p90 {:.1f} p99 {:.1f} ms".format(*q)

        task = asyncio.create_task(consume(0.005))
        lines = []
        for name, rate, pick in (("trickle", 20, lambda: (topics[0], b"one-reporter")),
                                 ("spread", 50, lambda: (random.choice(topics), uuid.uuid4().bytes))):
            latencies.clear()
            for i in range(rate * 20):
                value = f"{name}{i}".encode()
                topic, key = pick()
                sent[value] = time.perf_counter()
                await producer.send_and_wait(topic, value, key=key)
                await asyncio.sleep(random.expovariate(rate))
            await asyncio.sleep(1.0)
            lines.append(f"{name} {rate}/s {quantiles()}")
        task.cancel()
        received = 0
        task = asyncio.create_task(consume(0.02))
        started = time.perf_counter()
        for _ in range(10_800):
            await producer.send(topics[1], b"x" * 300, key=uuid.uuid4().bytes)
        await producer.flush()
        while received < 10_800:
            await asyncio.sleep(0.005)
        lines.append(f"burst 10,800 drained in {time.perf_counter() - started:.2f} s")
        task.cancel()
        return f"wait {wait_ms} ms: " + "; ".join([idle, *lines])
    finally:
        await consumer.stop()
        await producer.stop()


async def main() -> None:
    """Start a private broker and run each wait twice, interleaved."""
    port = free_port()
    broker = KafkaBroker(Path(tempfile.mkdtemp()) / "kafka", port, free_port())
    broker.start()
    try:
        await _trial(f"127.0.0.1:{port}", psutil.Process(broker.process.pid), WAITS_MS[0])  # warm the broker up
        for _ in range(2):
            for wait_ms in WAITS_MS:
                print(await _trial(f"127.0.0.1:{port}", psutil.Process(broker.process.pid), wait_ms), flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
