"""Platform tokens: signing (gateway) and verification (every service), roles and org-unit scope."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request

from shouwang_shared.errors import Forbidden, Unauthorized

ALGORITHM = "EdDSA"


class Role(StrEnum):
    """Who a principal is; staff roles carry an org-unit scope."""

    VOLUNTEER = "volunteer"
    GRID_WORKER = "grid_worker"
    STATION_ADMIN = "station_admin"
    TOWN_ADMIN = "town_admin"
    COUNTY_ADMIN = "county_admin"
    ANALYST = "analyst"
    POLICE_LIAISON = "police_liaison"
    OPERATOR = "operator"
    SERVICE = "service"


STAFF_ROLES = frozenset(Role) - {Role.VOLUNTEER}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: subject, role, org scope (materialized path) and volunteer id if any."""

    sub: str
    role: Role
    scope_path: str = ""
    volunteer_id: str | None = None
    token_id: str = ""
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    def has_role(self, *roles: Role) -> bool:
        """True when the principal holds one of `roles`."""
        return self.role in roles

    def covers(self, org_path: str | None) -> bool:
        """True when an object under `org_path` lies inside this principal's org scope."""
        if self.role in (Role.OPERATOR, Role.SERVICE):
            return True
        if not self.scope_path:
            return False
        if org_path is None:
            return False
        return org_path == self.scope_path or org_path.startswith(self.scope_path.rstrip("/") + "/")


def generate_keypair() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem


class TokenSigner:
    """Issues access tokens with a key id, so keys can rotate while old tokens still verify."""

    def __init__(self, private_pem: str, kid: str, *, issuer: str, audience: str) -> None:
        self._key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        self.kid, self.issuer, self.audience = kid, issuer, audience

    def issue(
        self, *, sub: str, role: Role | str, scope_path: str = "", volunteer_id: str | None = None,
        ttl_s: int = 900, extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed access token for `sub` valid for `ttl_s` seconds."""
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": sub, "iat": now, "nbf": now - 5,
            "exp": now + ttl_s, "jti": str(uuid.uuid4()), "role": str(role), "scope": scope_path,
        }
        if volunteer_id:
            claims["vid"] = volunteer_id
        claims.update(extra or {})
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})


class TokenVerifier:
    """Verifies platform tokens against the published public keys (by key id); remembers good ones until they expire."""

    def __init__(
        self, public_keys: dict[str, str], *, issuer: str, audience: str, leeway_s: int = 5, cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = {kid: serialization.load_pem_public_key(pem.encode()) for kid, pem in public_keys.items()}
        self.issuer, self.audience, self.leeway_s = issuer, audience, leeway_s
        self.cache_size, self._clock = cache_size, clock
        self._verified: dict[str, tuple[Principal, int]] = {}  # token -> (principal, exp); each hit re-checks expiry

    @classmethod
    def from_json(cls, keys_json: str, *, issuer: str, audience: str) -> TokenVerifier:
        """Build from the JSON `{"kid": "PEM"}` of the settings."""
        return cls(orjson.loads(keys_json) if keys_json else {}, issuer=issuer, audience=audience)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises Unauthorized naming what is wrong."""
        cached = self._verified.get(token)
        if cached is not None:
            # Signature, issuer, audience, nbf and iat cannot change for the same string: only expiry can.
            principal, expires_at = cached
            if expires_at <= self._clock() - self.leeway_s:
                raise Unauthorized("token expired", code="token_expired")
            return principal
        principal = self._verify_signed(token)
        if self.cache_size > 0:
            if len(self._verified) >= self.cache_size:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = (principal, int(principal.claims["exp"]))
        return principal

    def _verify_signed(self, token: str) -> Principal:
        """Check the signature and claims of a token not seen before."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token", code="invalid_token") from exc
        key = self._keys.get(header.get("kid", ""))
        if key is None or header.get("alg") != ALGORITHM:
            raise Unauthorized("token signed by an unknown key", code="invalid_token")
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway_s, options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from exc
        try:
            role = Role(claims.get("role", ""))
        except ValueError as exc:
            raise Unauthorized("token has an unknown role", code="invalid_token") from exc
        return Principal(
            sub=claims["sub"], role=role, scope_path=claims.get("scope", ""), volunteer_id=claims.get("vid"),
            token_id=claims.get("jti", ""), claims=claims,
        )


def bearer_token(request: Request) -> str:
    """The bearer token of a request; Unauthorized when absent."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token", code="missing_token")
    return token.strip()


def current_principal(request: Request) -> Principal:
    """The verified principal of the request."""
    verifier: TokenVerifier = request.app.state.runtime.verifier
    principal = verifier.verify(bearer_token(request))
    request.state.principal = principal
    return principal


async def verified_principal(request: Request) -> Principal:
    """FastAPI dependency: `current_principal` (async, so FastAPI does not hop to a worker thread per request)."""
    return current_principal(request)


CurrentPrincipal = Annotated[Principal, Depends(verified_principal)]


def require_roles(*roles: Role):
    """FastAPI dependency factory: the principal, when it holds one of `roles`; 403 otherwise."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"role {principal.role} may not do this", code="role_forbidden")
        return principal

    return Depends(dependency)
