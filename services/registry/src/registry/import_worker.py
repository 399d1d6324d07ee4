"""Command line: the roster import worker as a process of its own (run queued imports; the API then sets
`IMPORT_JOBS_IN_SERVICE=false` and never forks).

    python -m registry.import_worker      # DATABASE_URL, PII_KEY, PII_INDEX_KEY, IMPORT_WORKERS, HTTP_PORT from the env

Deployed as `registry-import-worker` (tools/deploy/manifests.py `WORKERS`); the API pods run with
IMPORT_JOBS_IN_SERVICE=false.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import start_http_server

from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.migrations import migrate

from registry.config import RegistrySettings
from registry.main import MIGRATIONS
from registry.roster.job_queue import run_import_worker


async def run(settings: RegistrySettings) -> None:
    """Run import jobs until cancelled."""
    # Metrics on the http port; any path answers, so the pod's /healthz and /readyz probes see a live process.
    start_http_server(settings.http_port, addr=settings.http_host)
    engine = make_engine(settings.database_url, pool_size=4)
    try:
        await migrate(engine, MIGRATIONS)
        await run_import_worker(sessions=make_session_factory(engine), cipher=settings.pii_cipher(), workers=settings.import_workers,
                                interval_s=settings.import_poll_interval_s)
    finally:
        await engine.dispose()


def main() -> None:
    """Read the settings and run the worker."""
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run(RegistrySettings()))


if __name__ == "__main__":
    main()
