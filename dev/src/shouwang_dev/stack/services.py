"""The services as separate processes (uvicorn), with the environment that wires them."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from shouwang_dev.stack.infra import die_with_parent


@dataclass(frozen=True)
class ServiceDef:
    """A service: its name, the app factory uvicorn runs, and its default dev port."""

    name: str
    factory: str
    dev_port: int


SERVICES: tuple[ServiceDef, ...] = (
    ServiceDef("registry", "registry.main:create_app", 8001),
    ServiceDef("dispatch", "dispatch.main:create_app", 8002),
    ServiceDef("intel", "intel.main:create_app", 8003),
    ServiceDef("rewards", "rewards.main:create_app", 8004),
    ServiceDef("reports", "reports.main:create_app", 8005),
    ServiceDef("gateway", "gateway.main:create_app", 8000),
)


# The secret keys each service is given, beyond the token verification keys every service holds: a service holds
# only its own (docs/security.md). Registry, dispatch and intel seal personal data, each under a PII_KEY of its own.
SERVICE_KEYS: dict[str, tuple[str, ...]] = {
    "registry": ("PII_KEY", "PII_INDEX_KEY", "CARD_SIGNING_KEY"),  # identities; volunteer cards; INVITE_KEY may be added
    "dispatch": ("PII_KEY",),  # service projects' beneficiaries (children's names, guardians' phones)
    "intel": ("PII_KEY", "RECEIPT_KEY", "PSEUDONYM_KEY"),  # dispute parties' phones; receipts; informant pseudonyms
    "rewards": ("PAYOUT_KEY",),  # anonymous reporters' payout targets at rest
    "reports": (),  # holds no personal data: its facts carry no names, texts or reporters
    "gateway": ("LOGIN_CODE_KEY", "VAPID_PRIVATE_KEY"),  # login codes' hashes; Web Push signing (its token signing key, apart)
}
# Settings that may sit beside a service's PII_KEY after a rotation (shouwang_shared.config.PiiKeySettings).
PII_ROTATION_SETTINGS = ("PII_KEY_VERSION", "PII_OLD_KEYS")


def service_env(
    name: str,
    *,
    port: int,
    database_url: str,
    bootstrap_servers: str,
    secrets: dict,
    service_urls: dict[str, str],
    topic_prefix: str = "",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment variables of one service process."""
    env = {
        "SERVICE_NAME": name,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "TOPIC_PREFIX": topic_prefix,
        "JWT_PUBLIC_KEYS": json.dumps({secrets["jwt_kid"]: secrets["jwt_public_pem"]}),
        **secrets.get("keys", {}).get(name, {}),
    }
    for other, url in service_urls.items():
        env[f"{other.upper()}_URL"] = url
    if name == "gateway":
        env["JWT_PRIVATE_KEY"] = secrets["jwt_private_pem"]
        env["JWT_ACTIVE_KID"] = secrets["jwt_kid"]
    env.update(extra or {})
    return env


def _fresh_key(name: str = "") -> str:
    """32 random bytes, base64; a VAPID key is a P-256 private scalar, base64url (what `vapid --gen` makes); a card
    signing key an Ed25519 private key, PEM."""
    if name == "CARD_SIGNING_KEY":
        from shouwang_shared.contracts.card import generate_private_key_pem

        return generate_private_key_pem()
    if name == "VAPID_PRIVATE_KEY":
        from cryptography.hazmat.primitives.asymmetric import ec

        scalar = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
        return base64.urlsafe_b64encode(scalar).rstrip(b"=").decode()
    return base64.b64encode(os.urandom(32)).decode()


def make_secrets() -> dict:
    """Fresh development secrets: a signing key pair and, under "keys", each service's own keys (`SERVICE_KEYS`)."""
    from shouwang_shared.auth import generate_keypair

    private_pem, public_pem = generate_keypair()
    return {
        "jwt_kid": "dev-" + base64.urlsafe_b64encode(os.urandom(4)).decode().rstrip("="),
        "jwt_private_pem": private_pem,
        "jwt_public_pem": public_pem,
        "keys": {service: {name: _fresh_key(name) for name in names} for service, names in SERVICE_KEYS.items() if names},
    }


def add_missing_keys(secrets: dict) -> bool:
    """Give every service the keys `SERVICE_KEYS` now names that a secrets file written earlier lacks; True if any."""
    added = False
    for service, names in SERVICE_KEYS.items():
        held = secrets["keys"].setdefault(service, {}) if names else {}
        for name in names:
            if name not in held:
                held[name] = _fresh_key(name)
                added = True
    return added


def split_shared_keys(old: dict) -> dict:
    """Secrets of the one-key-set-for-all layout (pii_key, pii_index_key, receipt_key) as per-service keys.

    Registry keeps the keys its stored identities and indexes are under; intel keeps its receipt key (anonymous
    reporters' receipts) and gets a PII key of its own as version 2, the shared one kept to open older phones.
    """
    fresh = make_secrets()
    keys = fresh["keys"]
    keys["registry"].update(PII_KEY=old["pii_key"], PII_INDEX_KEY=old["pii_index_key"])
    keys["intel"].update(RECEIPT_KEY=old.get("receipt_key", old["pii_index_key"]), PII_KEY_VERSION="2",
                         PII_OLD_KEYS=json.dumps({"1": old["pii_key"]}))
    return {**{k: v for k, v in old.items() if k.startswith("jwt_")}, "keys": keys}


# Idle keep-alive connections stay open longer than any client keeps them (the gateway's pool 30 s, an ingress
# 60 s): the client, not the server, closes an idle connection, so a request is never sent on one being closed.
KEEP_ALIVE_S = 75


class ServiceProcess:
    """One service running under uvicorn in its own process."""

    def __init__(self, definition: ServiceDef, *, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.definition = definition
        self.port = port
        self.env = env
        self.log_path = log_dir / f"{definition.name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Launch the process (returns at once; see `wait_healthy`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", self.definition.factory, "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--timeout-graceful-shutdown", "10",
             "--timeout-keep-alive", str(KEEP_ALIVE_S), "--no-proxy-headers"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent,
        )

    def wait_healthy(self, timeout_s: float = 60, *, ready: bool = False) -> None:
        """Wait until `/healthz` (or `/readyz` when `ready`) answers 200."""
        path = "/readyz" if ready else "/healthz"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.definition.name} exited; see {self.log_path}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.definition.name} not {'ready' if ready else 'healthy'} within {timeout_s}s; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.alive():
            self.process.kill()
            self.process.wait(10)

    def terminate(self) -> None:
        """Ask for a graceful stop (SIGTERM) without waiting for it."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 15) -> None:
        """Graceful stop (SIGTERM), then kill."""
        if not self.alive():
            return
        self.terminate()
        self.wait_or_kill(timeout_s)

    def wait_or_kill(self, timeout_s: float = 15) -> None:
        """Wait for a process asked to stop, and kill it when it lingers."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
