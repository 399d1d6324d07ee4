"""The roster import worker: as a process of its own (`python -m registry.import_worker`, as deployed): the API only
queues the job, the worker runs it, and answers its probes and metrics on the http port;
and a job whose worker keeps dying is given up after a few attempts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import httpx

from shouwang_dev.stack.infra import free_port
from shouwang_dev.testing import eventually, running_app

from registry.main import create_app
from registry.roster import job_queue
from tests.registry.conftest import Registry, registry_settings
from tests.registry.test_import import cipher_of, good_row, roster, upload_followed


async def test_an_api_without_in_service_jobs_queues_and_the_worker_process_imports(stack, topics):
    url = await stack.create_database("registry_import_worker")
    app = create_app(registry_settings(stack, url, import_jobs_in_service="false"))
    async with running_app(app) as client:
        operator = {"Authorization": f"Bearer {stack.token('operator', sub='ops')}"}
        county = await client.post("/v1/org-units", json={"name": "平安县志愿者联盟", "kind": "county"}, headers=operator)
        assert county.status_code == 201, county.text
        registry = Registry(client=client, database_url=url, stack=stack, county=county.json())
        _, station = await registry.town_with_station()
        queued = await client.post("/v1/imports", files={"file": ("r.csv", roster([good_row(station) for _ in range(4)]), "text/csv")},
                                   headers=registry.admin)
        assert queued.status_code == 202, queued.text
        job_url = f"/v1/imports/{queued.json()['id']}"
        await asyncio.sleep(1.0)
        assert (await client.get(job_url, headers=registry.admin)).json()["status"] == "queued"  # the API runs no jobs

        port = free_port()
        env = {**os.environ, **stack.service_env("registry", url), "HTTP_PORT": str(port), "IMPORT_POLL_INTERVAL_S": "0.2",
               "IMPORT_WORKERS": "1", "IMPORT_JOBS_IN_SERVICE": "false"}
        worker = subprocess.Popen([sys.executable, "-m", "registry.import_worker"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            async def ended():
                job = (await client.get(job_url, headers=registry.admin)).json()
                return job if job["status"] in ("done", "failed") else None

            job = await eventually(ended, timeout_s=60, message="the worker process to run the import")
            assert (job["status"], job["imported"], job["error_count"]) == ("done", 4, 0), job
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
                health = await probe.get("/healthz")
                assert health.status_code == 200 and "python_info" in health.text  # the pod's probes see a live process
        finally:
            worker.terminate()
            _, errors = await asyncio.to_thread(worker.communicate, timeout=15)
        assert b"Traceback" not in errors, errors.decode()[-2000:]


async def test_a_job_whose_worker_died_three_times_fails_naming_why_instead_of_running_again(registry):
    sealed = cipher_of(registry).encrypt(roster([good_row(registry.county)]).decode(), context=job_queue.FILE_CONTEXT)
    doomed, again = str(uuid.uuid4()), str(uuid.uuid4())
    for job_id, attempts in ((doomed, job_queue.MAX_ATTEMPTS), (again, job_queue.MAX_ATTEMPTS - 1)):
        await registry.sql(  # both stale: `doomed` has used all its attempts, `again` has one left
            "INSERT INTO roster_imports (id, created_by, created_role, scope_path, status, file_enc, total_lines, attempts, "
            "started_at, heartbeat_at) VALUES (CAST(:id AS uuid), 'tester', 'county_admin', :scope, 'running', :file, 1, "
            ":attempts, now() - interval '1 hour', now() - interval '1 hour')",
            id=job_id, scope=registry.county["path"], file=sealed, attempts=attempts)
    failed = await upload_followed(registry, doomed)
    assert failed["status"] == "failed" and f"{job_queue.MAX_ATTEMPTS} 次导入均中断" in failed["failure"], failed
    [(file_left, attempts)] = await registry.sql("SELECT file_enc IS NOT NULL, attempts FROM roster_imports WHERE id = CAST(:id AS uuid)", id=doomed)
    assert (file_left, attempts) == (False, job_queue.MAX_ATTEMPTS)  # never taken a fourth time, its upload gone
    retried = await upload_followed(registry, again)
    [(attempts,)] = await registry.sql("SELECT attempts FROM roster_imports WHERE id = CAST(:id AS uuid)", id=again)
    assert retried["status"] in ("done", "failed") and attempts == job_queue.MAX_ATTEMPTS  # the last attempt was made
