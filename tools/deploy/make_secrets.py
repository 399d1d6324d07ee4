"""Make fresh platform secrets (signing key pair, each service's own keys, database passwords) for a cluster or compose.

  python tools/deploy/make_secrets.py k8s --namespace shouwang-dev | kubectl apply -f -
  python tools/deploy/make_secrets.py compose          # writes deploy/compose/secrets/*.env

The Kubernetes form prints the Secrets the manifests reference: shouwang-platform (token verification keys, every
service), <service>-keys (a service's own keys: registry, intel, gateway), <service>-database, gateway-signing and
(for the dev overlay's in-cluster PostgreSQL) shouwang-postgres. Production keeps these in its secret manager;
this output shows their exact shape.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets as random_secrets
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from manifests import REPO, SERVICE_NAMES  # noqa: E402

from shouwang_dev.stack.services import make_secrets, split_shared_keys  # noqa: E402


def platform_values(material: dict) -> dict[str, str]:
    """What every service reads: the token verification keys (public)."""
    return {"JWT_PUBLIC_KEYS": json.dumps({material["jwt_kid"]: material["jwt_public_pem"]})}


def key_values(material: dict) -> dict[str, dict[str, str]]:
    """Each service's own keys ({service: {NAME: key}}), for the services that have any (`SERVICE_KEYS`)."""
    return {service: dict(keys) for service, keys in material["keys"].items()}


def signing_values(material: dict) -> dict[str, str]:
    """What only the gateway reads: the token signing key."""
    return {"JWT_PRIVATE_KEY": material["jwt_private_pem"], "JWT_ACTIVE_KID": material["jwt_kid"]}


def kubernetes_secrets(namespace: str, database_host: str, material: dict | None = None) -> list[dict]:
    """The Secrets of one namespace, with a fresh password per service database."""
    material = material or make_secrets()
    passwords = {name: random_secrets.token_urlsafe(24) for name in SERVICE_NAMES}

    def secret(name: str, data: dict[str, str]) -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "shouwang"}},
                "stringData": data}

    documents = [secret("shouwang-platform", platform_values(material)), secret("gateway-signing", signing_values(material))]
    documents += [secret(f"{service}-keys", keys) for service, keys in key_values(material).items()]
    for name in SERVICE_NAMES:
        url = f"postgresql+asyncpg://{name}:{passwords[name]}@{database_host}:5432/{name}"
        documents.append(secret(f"{name}-database", {"DATABASE_URL": url}))
    postgres = {"POSTGRES_PASSWORD": random_secrets.token_urlsafe(24)}
    postgres.update({f"{name.upper()}_DB_PASSWORD": passwords[name] for name in SERVICE_NAMES})
    documents.append(secret("shouwang-postgres", postgres))
    return documents


def env_file(values: dict[str, str]) -> str:
    """A compose env file; multi-line values as double-quoted strings with \\n escapes."""
    lines = []
    for key, value in values.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"


def read_env_file(path: Path) -> dict[str, str]:
    """The values of an env file written by `env_file`."""
    values = {}
    for line in path.read_text().splitlines():
        key, sep, quoted = line.partition("=")
        if sep and quoted.startswith('"') and quoted.endswith('"'):
            values[key] = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), quoted[1:-1])
    return values


def write_compose_secrets(directory: Path, *, force: bool = False) -> list[Path]:
    """Write platform.env, gateway-signing.env and <service>-keys.env for docker compose. Unless forced, existing files
    are kept and only missing ones written (a service's keys added later); the token key pair is written as a pair."""
    directory.mkdir(parents=True, exist_ok=True)
    material = make_secrets()
    contents = {"platform.env": platform_values(material), "gateway-signing.env": signing_values(material)}
    shared = read_env_file(directory / "platform.env") if (directory / "platform.env").exists() and not force else {}
    if "PII_KEY" in shared:  # one key set for every service, as written before: split it, keeping stored data readable
        material = split_shared_keys({name.lower(): value for name, value in shared.items()})
        contents = {"platform.env": {"JWT_PUBLIC_KEYS": shared["JWT_PUBLIC_KEYS"]}}
    contents |= {f"{service}-keys.env": keys for service, keys in key_values(material).items()}
    targets = [directory / name for name in contents]
    if not force and "PII_KEY" not in shared:  # keep what exists (data is sealed under it); add only what is missing, e.g. a service's new keys
        pair = [directory / "platform.env", directory / "gateway-signing.env"]
        missing = [t for t in targets if not t.exists()]
        targets = pair + [t for t in missing if t not in pair] if any(t in missing for t in pair) else missing
    for target in targets:
        target.write_text(env_file(contents[target.name]))
        target.chmod(0o600)
    return targets


def main() -> int:
    """Print Kubernetes Secrets or write the compose env files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="target", required=True)
    k8s = sub.add_parser("k8s", help="print Secret manifests for a namespace")
    k8s.add_argument("--namespace", required=True)
    k8s.add_argument("--database-host", default="shouwang-postgres", help="PostgreSQL host the services connect to")
    compose = sub.add_parser("compose", help="write deploy/compose/secrets/*.env")
    compose.add_argument("--force", action="store_true", help="replace existing secrets (invalidates issued tokens)")
    args = parser.parse_args()
    if args.target == "k8s":
        print("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in kubernetes_secrets(args.namespace, args.database_host)), end="")
    else:
        written = write_compose_secrets(REPO / "deploy" / "compose" / "secrets", force=args.force)
        print("\n".join(f"wrote {p.relative_to(REPO)}" for p in written) or "secrets exist; --force to replace them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
