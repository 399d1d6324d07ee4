"""`python -m shouwang_dev.stack infra|dev`: run PostgreSQL + Kafka (+ the services) until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shouwang_dev.stack.infra import KafkaBroker, PostgresServer, free_port, repo_root
from shouwang_dev.stack.services import SERVICES, ServiceProcess, add_missing_keys, make_secrets, service_env, split_shared_keys

log = logging.getLogger("stack")


def _load_or_make_secrets(state: Path) -> dict:
    path = state / "secrets.json"
    if not path.exists():
        secrets = make_secrets()
    else:
        secrets = json.loads(path.read_text())
        if "keys" in secrets and not add_missing_keys(secrets):
            return secrets
        if "keys" not in secrets:
            secrets = split_shared_keys(secrets)  # written before each service had keys of its own
    path.write_text(json.dumps(secrets))
    path.chmod(0o600)
    return secrets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shouwang_dev.stack")
    parser.add_argument("mode", choices=["infra", "dev"], help="infra: PostgreSQL + Kafka; dev: also the five services and demo data")
    parser.add_argument("--state", default=str(repo_root() / ".local" / "dev"), help="where data, logs and secrets live")
    parser.add_argument("--free-ports", action="store_true", help="pick free ports instead of the fixed dev ports")
    parser.add_argument("--no-demo", action="store_true", help="do not load the demo county")
    parser.add_argument("--volunteers", type=int, default=5000, help="volunteers in the demo county")
    parser.add_argument("--exit-when-ready", action="store_true", help="stop everything once healthy (a smoke check)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    state = Path(args.state).resolve()
    state.mkdir(parents=True, exist_ok=True)
    pg_port = free_port() if args.free_ports else 55432
    kafka_port, controller_port = (free_port(), free_port()) if args.free_ports else (59092, 59093)

    started = time.monotonic()
    pg = PostgresServer(state / "pgdata", pg_port)
    kafka = KafkaBroker(state / "kafka", kafka_port, controller_port)
    services: list[ServiceProcess] = []
    stopping = False

    def shutdown(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping…", flush=True)
        for svc in reversed(services):
            svc.stop()
        kafka.stop()
        pg.stop()
        print("stopped.", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: (shutdown(), sys.exit(0)))
    try:
        pg.start()
        kafka.start()
        print(f"PostgreSQL  postgresql://postgres@127.0.0.1:{pg_port}/postgres")
        print(f"Kafka       {kafka.bootstrap_servers}")
        env_file = state / "stack.env"
        lines = [f"STACK_PG_ADMIN_URL={pg.admin_url}", f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}"]
        if args.mode == "dev":
            secrets = _load_or_make_secrets(state)
            pg.create_databases(*(s.name for s in SERVICES))
            ports = {s.name: (free_port() if args.free_ports else s.dev_port) for s in SERVICES}
            urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            for definition in SERVICES:
                env = service_env(
                    definition.name, port=ports[definition.name], database_url=pg.url(definition.name),
                    bootstrap_servers=kafka.bootstrap_servers, secrets=secrets,
                    service_urls={k: v for k, v in urls.items() if k != definition.name},
                    extra={"DEV_MODE": "1", **({"VIOLATION_LOOKUP": "fake"} if definition.name == "intel" else {})},
                )
                svc = ServiceProcess(definition, port=ports[definition.name], env=env, log_dir=state / "logs")
                svc.start()
                services.append(svc)
            for svc in services:
                svc.wait_healthy(90)
            for svc in services:
                svc.wait_healthy(90, ready=True)
            print(f"all five services healthy and ready in {time.monotonic() - started:.1f}s")
            for svc in services:
                print(f"  {svc.definition.name:9s} {svc.url}  (logs: {svc.log_path})")
            lines += [f"{k.upper()}_URL={v}" for k, v in urls.items()]
            if not args.no_demo:
                print("loading the demo county (shouwang_dev.demo)…", flush=True)
                registry_env = next(svc.env for svc in services if svc.definition.name == "registry")
                subprocess.run([sys.executable, "-m", "shouwang_dev.demo", "--database-url", pg.url("registry"),
                                "--volunteers", str(args.volunteers)], check=True, env={**os.environ, **registry_env})
                print(f"demo county loaded; everything up in {time.monotonic() - started:.1f}s")
            print(f"Gateway     {urls['gateway']}   (ops console: {urls['gateway']}/console/ · API docs: {urls['gateway']}/docs)")
        env_file.write_text("\n".join(lines) + "\n")
        if args.exit_when_ready:
            return 0
        print("Ctrl-C stops everything.", flush=True)
        while True:
            time.sleep(1)
            for svc in services:
                if not svc.alive():
                    log.error("%s exited; see %s", svc.definition.name, svc.log_path)
                    svc.start()
    except KeyboardInterrupt:
        return 0
    finally:
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
