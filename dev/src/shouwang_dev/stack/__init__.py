"""The local stack without Docker: a real PostgreSQL, a real Apache Kafka (KRaft) and the services."""

from shouwang_dev.stack.infra import KafkaBroker, PostgresServer, free_port, repo_root
from shouwang_dev.stack.services import SERVICES, ServiceProcess, service_env

__all__ = ["KafkaBroker", "PostgresServer", "ServiceProcess", "SERVICES", "free_port", "repo_root", "service_env"]
