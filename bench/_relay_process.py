"""One outbox relay as a process of its own, as a service replica runs it: `python -m bench._relay_process URL SERVERS PREFIX`.

The relay scale-out bench and the replica test start one or two of these on one database; SIGTERM stops it after
the batch in progress (SIGKILL is a crash). Settings are the services' defaults (`ServiceSettings`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from shouwang_shared.config import ServiceSettings
from shouwang_shared.db import StatementPool, make_engine
from shouwang_shared.kafka import make_producer
from shouwang_shared.outbox import OutboxRelay


async def main(url: str, servers: str, prefix: str) -> None:
    """Run one relay on `url` until SIGTERM."""
    defaults = {name: field.default for name, field in ServiceSettings.model_fields.items()}
    engine = make_engine(url, pool_size=4)
    statements = StatementPool(url, max_size=4)
    await statements.start()
    producer = make_producer(servers, linger_ms=defaults["producer_linger_ms"], client_id="relay-process")
    await producer.start()
    relay = OutboxRelay(engine=engine, producer=producer, bootstrap_servers=servers, service="relay-process",
                        topic_prefix=prefix, batch_size=defaults["outbox_batch_size"],
                        poll_interval_s=defaults["outbox_poll_interval_s"],
                        idle_poll_interval_s=defaults["outbox_idle_poll_interval_s"], statements=statements)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, relay.stop)
    print("relay started", flush=True)
    try:
        await relay.run()
    finally:
        await producer.stop()
        await statements.close()
        await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(*sys.argv[1:4]))
