"""Bearer tokens → :class:`~carnet.domain.actors.Actor`: the claims contract of docs/tokens.md.

:class:`TokenVerifier` checks, in this order: the token's shape, its algorithm (RS256, ES256,
EdDSA/Ed25519 only: never ``none``, never HS*), its issuer (the development issuer when
CARNET_DEV_ISSUER is on, or one of CARNET_OIDC_ISSUERS), its signature against the issuer's keys
(inline JWKS or a ``jwks_uri`` fetched with httpx and cached), then ``aud``, ``exp``, ``nbf``
and ``iat`` (30 s leeway), then the carnet claims. Every failure is a
:class:`~carnet.domain.errors.NotAuthenticated` (401) whose message says what is wrong.

A token that verified is remembered (by its SHA-256, never the token itself) until its ``exp``,
but at most :data:`TOKEN_CACHE_SECONDS`, so the next requests that carry it skip the signature
check. Refusals are never remembered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import math
import re
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import httpx
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from carnet.domain.actors import AccessMode, Actor, ActorKind
from carnet.domain.errors import ConfigurationError, NotAuthenticated, Rejected
from carnet.domain.ins import INS_OIDS, OID_NIA, OID_NIR, OID_NIR_TEST, check_ins_value
from carnet.domain.professionals import check_idnatps
from carnet.settings import Settings

if TYPE_CHECKING:
    from carnet.auth.dev_issuer import DevIssuer

log = logging.getLogger(__name__)

#: The ``iss`` of the built-in development issuer (:mod:`carnet.auth.dev_issuer`).
DEV_ISSUER_URL = "urn:carnet:dev-issuer"
#: ``ins_oid`` when a patient token carries none: the INS-NIR.
DEFAULT_INS_OID = OID_NIR
#: Signature algorithms accepted. ``Ed25519`` is RFC 9864's name for EdDSA over Ed25519.
ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA", "Ed25519")
#: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
LEEWAY_SECONDS = 30
#: How long a JWKS fetched from a ``jwks_uri`` is trusted before it is fetched again.
JWKS_TTL_SECONDS = 600.0
#: Fetched keys are still used while the jwks_uri fails, up to this age.
JWKS_MAX_STALE_SECONDS = 3600.0
#: Shorter RSA keys in a JWKS are ignored.
MIN_RSA_BITS = 2048
#: A verified token is verified again after this long, even if its ``exp`` is later: a key
#: withdrawn from an issuer's JWKS, or an issuer removed from the configuration, stops
#: tokens already seen within this delay.
TOKEN_CACHE_SECONDS = 300.0
#: Verified tokens remembered at most (least recently used first out).
TOKEN_CACHE_SIZE = 10_000
#: Longest token accepted (characters).
MAX_TOKEN_LENGTH = 16 * 1024
#: Largest JWKS document accepted from a ``jwks_uri`` (bytes).
MAX_JWKS_BYTES = 512 * 1024
#: Our claim names that an issuer's ``"claims"`` mapping may rename.
MAPPABLE_CLAIMS = frozenset(
    {
        "carnet_kind",
        "ins",
        "ins_oid",
        "rpps",
        "profession",
        "specialty",
        "structure",
        "mode",
        "reason",
        "name",
    }
)

_KINDS = {"patient": ActorKind.PATIENT, "professional": ActorKind.PROFESSIONAL}
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def check_ins_oid(oid: str, *, allow_test: bool) -> str:
    """The INS OID without ``urn:oid:``; :class:`ValueError` says why it is not an INS OID."""
    value = oid.strip().removeprefix("urn:oid:")
    if value not in INS_OIDS:
        raise ValueError(
            f"{oid!r} is not an INS OID: expected {OID_NIR} (INS-NIR), {OID_NIA} (INS-NIA) "
            f"or {OID_NIR_TEST} (INS-NIR de test)"
        )
    if value == OID_NIR_TEST and not allow_test:
        raise ValueError(
            f"test INS ({OID_NIR_TEST}) are refused on this server "
            "(set CARNET_ALLOW_TEST_INS=1 for tests and demos)"
        )
    return value


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted issuer: an entry of CARNET_OIDC_ISSUERS, or the development issuer."""

    issuer: str
    jwks_uri: str | None = None
    keys: tuple[Key, ...] = ()  # inline JWKS (public keys)
    audience: str | None = None  # None: settings.audience
    kind: ActorKind | None = None  # None: the token's carnet_kind decides
    claims: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


_NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _IssuerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: _NonEmpty
    jwks_uri: _NonEmpty | None = None
    jwks: dict[str, Any] | None = None
    audience: _NonEmpty | None = None
    kind: Literal["professional", "patient"] | None = None
    claims: dict[str, _NonEmpty] = {}


def parse_oidc_issuers(raw: str | None) -> tuple[IssuerConfig, ...]:
    """Parse CARNET_OIDC_ISSUERS (docs/tokens.md); :class:`ConfigurationError` on any mistake."""
    if raw is None or not raw.strip():
        return ()
    name = "CARNET_OIDC_ISSUERS"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ConfigurationError(
            f'{name} must be a JSON list of objects like {{"issuer": "...", "jwks_uri": "..."}}'
        )
    configs: list[IssuerConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise ConfigurationError(f"{where} must be a JSON object")
        try:
            entry = _IssuerEntry.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {_lower(e['msg'])}"
                for e in exc.errors(include_url=False)
            )
            raise ConfigurationError(f"{where}: {problems}") from None
        where = f"{where} ({entry.issuer})"
        if entry.issuer == DEV_ISSUER_URL:
            raise ConfigurationError(
                f"{where}: {DEV_ISSUER_URL} is the development issuer, set CARNET_DEV_ISSUER=1"
            )
        if entry.issuer in seen:
            raise ConfigurationError(f"{where}: issuer listed twice")
        seen.add(entry.issuer)
        if (entry.jwks_uri is None) == (entry.jwks is None):
            raise ConfigurationError(f"{where}: give exactly one of jwks_uri and jwks")
        keys: tuple[Key, ...] = ()
        if entry.jwks_uri is not None:
            _check_jwks_uri(entry.jwks_uri, where)
        else:
            try:
                keys = import_jwks(entry.jwks)
            except ValueError as exc:
                raise ConfigurationError(f"{where}: jwks: {exc}") from None
        unknown = sorted(set(entry.claims) - MAPPABLE_CLAIMS)
        if unknown:
            raise ConfigurationError(
                f"{where}: claims: cannot map {', '.join(unknown)}; "
                f"mappable claims are {', '.join(sorted(MAPPABLE_CLAIMS))}"
            )
        configs.append(
            IssuerConfig(
                issuer=entry.issuer,
                jwks_uri=entry.jwks_uri,
                keys=keys,
                audience=entry.audience,
                kind=_KINDS[entry.kind] if entry.kind else None,
                claims=MappingProxyType(dict(entry.claims)),
            )
        )
    return tuple(configs)


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def _check_jwks_uri(uri: str, where: str) -> None:
    try:
        url = httpx.URL(uri)
    except Exception:
        raise ConfigurationError(f"{where}: jwks_uri {uri!r} is not a URL") from None
    local = url.host in {"localhost", "127.0.0.1", "::1"}
    if (url.scheme == "https" or (url.scheme == "http" and local)) and url.host:
        return
    raise ConfigurationError(
        f"{where}: jwks_uri must be an https:// URL (http:// only for localhost), got {uri!r}"
    )


def import_jwks(data: object) -> tuple[Key, ...]:
    """The public signature keys of a JWKS document; :class:`ValueError` if there are none.

    Symmetric (``oct``) keys, encryption keys and key types we do not know are skipped.
    """
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError('a JWKS is a JSON object {"keys": [...]}')
    keys: list[Key] = []
    for item in data["keys"]:
        if not isinstance(item, dict) or item.get("kty") not in {"RSA", "EC", "OKP"}:
            continue
        if item.get("use") not in (None, "sig"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SecurityWarning)
                key = JWKRegistry.import_key(item)
                public = JWKRegistry.import_key(key.as_dict(private=False))
        except Exception as exc:
            raise ValueError(f"key {item.get('kid')!r} cannot be read: {exc}") from None
        if isinstance(public, RSAKey) and public.public_key.key_size < MIN_RSA_BITS:
            log.warning("JWKS: RSA key %r ignored: shorter than %d bits", public.kid, MIN_RSA_BITS)
            continue
        keys.append(public)
    if not keys:
        raise ValueError("no usable signature key in the JWKS (RSA of 2048 bits or more, EC, OKP)")
    return tuple(keys)


# --------------------------------------------------------------------------- key resolution


@dataclass
class _Issuer:
    config: IssuerConfig
    keys: tuple[Key, ...] = ()
    fetched_at: float | None = None  # clock() of the last successful fetch
    attempted_at: float | None = None  # clock() of the last fetch attempt
    last_error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _key_fits(key: Key, alg: str) -> bool:
    if key.get("use") not in (None, "sig"):
        return False
    declared = key.get("alg")
    if declared is not None and declared != alg and {declared, alg} != {"EdDSA", "Ed25519"}:
        return False
    if alg == "RS256":
        return isinstance(key, RSAKey)
    if alg == "ES256":
        return isinstance(key, ECKey) and key.curve_name == "P-256"
    if alg == "EdDSA":
        return isinstance(key, OKPKey) and key.curve_name in {"Ed25519", "Ed448"}
    if alg == "Ed25519":
        return isinstance(key, OKPKey) and key.curve_name == "Ed25519"
    return False


def _select(keys: tuple[Key, ...], kid: str | None, alg: str) -> list[Key]:
    return [k for k in keys if (kid is None or k.kid == kid) and _key_fits(k, alg)]


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that verified: its actor, from ``verified_at`` until ``until`` (clock times)."""

    actor: Actor
    verified_at: float
    until: float  # exp + leeway, or verified_at + TOKEN_CACHE_SECONDS if sooner


# --------------------------------------------------------------------------- verification


class TokenVerifier:
    """Turns a bearer token into an :class:`Actor`, or raises :class:`NotAuthenticated`.

    ``dev_issuer`` is used only when ``settings.dev_issuer`` is true; if it is true and no
    instance is given, the key under ``settings.data_dir`` is loaded (or created).
    ``http`` fetches the ``jwks_uri`` of external issuers (a short-lived client otherwise).
    ``clock`` (seconds since the epoch) is for tests. ``cache_size`` verified tokens are
    remembered for ``cache_seconds`` at most (0 turns the cache off).
    """

    #: A JWKS is fetched again before its TTL on an unknown ``kid``, at most this often.
    jwks_min_refetch_seconds: float = 10.0

    def __init__(
        self,
        settings: Settings,
        dev_issuer: DevIssuer | None = None,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
        cache_size: int = TOKEN_CACHE_SIZE,
        cache_seconds: float = TOKEN_CACHE_SECONDS,
    ) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds
        self._issuers: dict[str, _Issuer] = {}
        for config in parse_oidc_issuers(settings.oidc_issuers):
            self._issuers[config.issuer] = _Issuer(config, keys=config.keys)
        if settings.dev_issuer:
            if dev_issuer is None:
                from carnet.auth.dev_issuer import DevIssuer

                dev_issuer = DevIssuer.load_or_create(
                    settings.data_dir, settings.audience, settings.token_ttl_seconds
                )
            try:
                dev_keys = import_jwks(dev_issuer.jwks())
            except ValueError as exc:  # pragma: no cover - the dev issuer always has its key
                raise ConfigurationError(f"development issuer: {exc}") from None
            config = IssuerConfig(issuer=DEV_ISSUER_URL, keys=dev_keys)
            self._issuers[DEV_ISSUER_URL] = _Issuer(config, keys=dev_keys)

    @property
    def issuers(self) -> tuple[str, ...]:
        """The ``iss`` values this verifier trusts."""
        return tuple(self._issuers)

    async def verify(self, token: str) -> Actor:
        """The actor a valid token stands for; :class:`NotAuthenticated` says what is wrong."""
        try:
            return await self._verify(token)
        except NotAuthenticated:
            raise
        except Exception:
            log.warning("unexpected error while verifying a bearer token", exc_info=True)
            raise NotAuthenticated("invalid token") from None

    async def _verify(self, token: str) -> Actor:
        if not isinstance(token, str):
            raise NotAuthenticated("the bearer token must be a string")
        token = token.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise NotAuthenticated("missing bearer token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise NotAuthenticated(f"token too long (more than {MAX_TOKEN_LENGTH} characters)")
        if self._cache_size <= 0:
            return (await self._check(token))[0]
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        seen = self._cache.get(digest)
        if seen is not None:
            if seen.verified_at <= now < seen.until:
                self._cache.move_to_end(digest)
                return seen.actor
            # expired, too old, or the clock went back: checked again from scratch below
            del self._cache[digest]
        actor, exp = await self._check(token)
        self._cache[digest] = _Verified(
            actor, now, min(exp + LEEWAY_SECONDS, now + self._cache_seconds)
        )
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return actor

    async def _check(self, token: str) -> tuple[Actor, float]:
        """The actor of a token and its ``exp``, after every check of docs/tokens.md."""
        header, unverified = _peek(token)
        alg = _check_alg(header)
        issuer = self._issuer_for(unverified.get("iss"))
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise NotAuthenticated("malformed token: kid must be a string")
        keys = await self._keys_for(issuer, kid, alg)
        claims = _check_signature(token, keys, alg)
        exp = self._check_times(claims)
        self._check_audience(claims, issuer.config)
        return self._actor(claims, issuer.config), exp

    # -- issuer and keys

    def _issuer_for(self, iss: object) -> _Issuer:
        if iss is None:
            raise NotAuthenticated("missing claim iss")
        if not isinstance(iss, str):
            raise NotAuthenticated("claim iss must be a string")
        found = self._issuers.get(iss)
        if found is not None:
            return found
        if iss == DEV_ISSUER_URL:
            raise NotAuthenticated(
                f"unknown issuer {iss!r}: the development issuer is off on this server "
                "(CARNET_DEV_ISSUER)"
            )
        raise NotAuthenticated(f"unknown issuer {iss!r}: not one of the configured issuers")

    async def _keys_for(self, issuer: _Issuer, kid: str | None, alg: str) -> list[Key]:
        uri = issuer.config.jwks_uri
        name = issuer.config.issuer
        if uri is not None and (
            issuer.fetched_at is None or self._clock() - issuer.fetched_at >= JWKS_TTL_SECONDS
        ):
            await self._refresh(issuer, force=False)
        keys = _select(self._usable_keys(issuer), kid, alg)
        if not keys and uri is not None:
            await self._refresh(issuer, force=True)
            keys = _select(self._usable_keys(issuer), kid, alg)
        if keys:
            return keys
        if not self._usable_keys(issuer) and issuer.last_error:
            raise NotAuthenticated(
                f"the keys of issuer {name!r} are unavailable: {issuer.last_error}"
            )
        which = f"no key {kid!r}" if kid is not None else "no key"
        raise NotAuthenticated(f"{which} for {alg} in the JWKS of issuer {name!r}")

    def _usable_keys(self, issuer: _Issuer) -> tuple[Key, ...]:
        """Inline keys, or fetched keys not older than JWKS_MAX_STALE_SECONDS.

        When a refresh fails the previous keys stay in use, but not forever: a key the issuer
        withdrew must not outlive a long outage of its jwks_uri.
        """
        if issuer.config.jwks_uri is None:
            return issuer.keys
        if issuer.fetched_at is None:
            return ()
        if self._clock() - issuer.fetched_at >= JWKS_MAX_STALE_SECONDS:
            return ()
        return issuer.keys

    async def _refresh(self, issuer: _Issuer, *, force: bool) -> None:
        uri = issuer.config.jwks_uri
        assert uri is not None
        seen = issuer.attempted_at
        async with issuer.lock:
            if issuer.attempted_at != seen:
                return  # another request refreshed while we waited
            now = self._clock()
            if (
                issuer.attempted_at is not None
                and now - issuer.attempted_at < self.jwks_min_refetch_seconds
                and (force or issuer.last_error is not None)
            ):
                return
            issuer.attempted_at = now
            try:
                keys = await self._fetch(uri)
            except ValueError as exc:
                issuer.last_error = str(exc)
                log.warning("JWKS of issuer %s: %s", issuer.config.issuer, exc)
                return
            issuer.keys = keys
            issuer.fetched_at = now
            issuer.last_error = None

    async def _fetch(self, uri: str) -> tuple[Key, ...]:
        headers = {"Accept": "application/json, application/jwk-set+json"}
        try:
            if self._http is not None:
                response = await self._http.get(uri, headers=headers, timeout=10.0)
            else:
                async with httpx.AsyncClient(timeout=10.0) as client:
                    response = await client.get(uri, headers=headers)
        except httpx.HTTPError as exc:
            raise ValueError(f"cannot fetch {uri}: {type(exc).__name__} {exc}".strip()) from None
        if response.status_code != 200:
            raise ValueError(f"{uri} answered HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise ValueError(f"{uri} sent more than {MAX_JWKS_BYTES} bytes")
        try:
            data = json.loads(response.content)
        except ValueError:
            raise ValueError(f"{uri} did not send JSON") from None
        try:
            return import_jwks(data)
        except ValueError as exc:
            raise ValueError(f"{uri}: {exc}") from None

    # -- claims

    def _check_times(self, claims: Mapping[str, Any]) -> float:
        """``exp``, after checking ``exp``, ``nbf`` and ``iat`` against the clock."""
        now = self._clock()
        exp = _numeric(claims, "exp", required=True)
        assert exp is not None
        if now >= exp + LEEWAY_SECONDS:
            raise NotAuthenticated("token expired")
        nbf = _numeric(claims, "nbf", required=False)
        if nbf is not None and now + LEEWAY_SECONDS < nbf:
            raise NotAuthenticated("token not valid yet (nbf is in the future)")
        iat = _numeric(claims, "iat", required=False)
        if iat is not None and now + LEEWAY_SECONDS < iat:
            raise NotAuthenticated("token issued in the future (iat); check the clocks")
        return exp

    def _check_audience(self, claims: Mapping[str, Any], config: IssuerConfig) -> None:
        expected = config.audience or self._settings.audience
        aud = claims.get("aud")
        if aud is None:
            raise NotAuthenticated(f"missing claim aud (this server expects {expected!r})")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise NotAuthenticated("claim aud must be a string or a list of strings")
        if expected not in audiences:
            raise NotAuthenticated(
                f"audience {aud!r} not accepted: this server expects {expected!r}"
            )

    def _actor(self, claims: Mapping[str, Any], config: IssuerConfig) -> Actor:
        get = _ClaimReader(claims, config)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise NotAuthenticated("missing claim sub")
        raw_kind = get.text("carnet_kind")
        if raw_kind is not None and raw_kind not in _KINDS:
            raise NotAuthenticated(
                f"claim carnet_kind must be 'patient' or 'professional', got {raw_kind!r}"
            )
        token_kind = _KINDS[raw_kind] if raw_kind is not None else None
        if config.kind is not None and token_kind is not None and token_kind is not config.kind:
            raise NotAuthenticated(
                f"issuer {config.issuer!r} authenticates {config.kind.value}s, "
                f"but the token says carnet_kind {raw_kind!r}"
            )
        kind = config.kind or token_kind
        if kind is None:
            raise NotAuthenticated("missing claim carnet_kind ('patient' or 'professional')")
        name = get.text("name")
        if kind is ActorKind.PATIENT:
            ins_raw = get.required("ins", "a patient")
            try:
                ins = check_ins_value(ins_raw, field="ins")
            except Rejected as exc:
                raise NotAuthenticated(f"claim ins: {exc.message}") from None
            try:
                ins_oid = check_ins_oid(
                    get.text("ins_oid") or DEFAULT_INS_OID,
                    allow_test=self._settings.allow_test_ins,
                )
            except ValueError as exc:
                raise NotAuthenticated(f"claim ins_oid: {exc}") from None
            return Actor(
                kind=ActorKind.PATIENT,
                subject=sub,
                issuer=config.issuer,
                ins=ins,
                ins_oid=ins_oid,
                name=name,
            )
        try:
            rpps = check_idnatps(get.required("rpps", "a professional"), field="rpps")
        except Rejected as exc:
            raise NotAuthenticated(f"claim rpps: {exc.message}") from None
        profession = get.required("profession", "a professional")
        raw_mode = get.text("mode") or AccessMode.NORMAL.value
        try:
            mode = AccessMode(raw_mode)
        except ValueError:
            allowed = ", ".join(m.value for m in AccessMode)
            raise NotAuthenticated(
                f"claim mode must be one of {allowed}, got {raw_mode!r}"
            ) from None
        reason = get.text("reason")
        if mode is AccessMode.BRIS_DE_GLACE and not reason:
            raise NotAuthenticated("bris_de_glace needs a reason (claim reason)")
        return Actor(
            kind=ActorKind.PROFESSIONAL,
            subject=sub,
            issuer=config.issuer,
            rpps=rpps,
            profession=profession,
            specialty=get.text("specialty"),
            structure=get.text("structure"),
            mode=mode,
            reason=reason,
            name=name,
        )


class _ClaimReader:
    """Reads our claims through the issuer's mapping (exact name first, then a dotted path)."""

    def __init__(self, claims: Mapping[str, Any], config: IssuerConfig) -> None:
        self._claims = claims
        self._mapping = config.claims

    def _source(self, name: str) -> str:
        return self._mapping.get(name, name)

    def _label(self, name: str) -> str:
        source = self._source(name)
        return name if source == name else f"{name} (from {source!r})"

    def raw(self, name: str) -> object:
        source = self._source(name)
        if source in self._claims:
            return self._claims[source]
        if "." not in source:
            return None
        value: object = self._claims
        for part in source.split("."):
            if isinstance(value, Mapping):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        return value

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise NotAuthenticated(f"claim {self._label(name)} must be a string")
        value = value.strip()
        return value or None

    def required(self, name: str, who: str) -> str:
        value = self.text(name)
        if value is None:
            raise NotAuthenticated(f"missing claim {self._label(name)} for {who}")
        return value


def _numeric(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise NotAuthenticated(f"missing claim {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise NotAuthenticated(f"claim {name} must be a number of seconds since 1970 (NumericDate)")
    return float(value)


def _b64json(segment: str, part: str) -> dict[str, Any]:
    if not _B64URL.match(segment):
        raise NotAuthenticated(f"malformed token: the {part} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise NotAuthenticated(f"malformed token: the {part} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise NotAuthenticated(f"malformed token: the {part} is not a JSON object")
    return value


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload, unverified: only to choose the algorithm, the issuer and the key."""
    parts = token.split(".")
    if len(parts) == 5:
        raise NotAuthenticated("encrypted tokens (JWE) are not accepted: send a signed JWT")
    if len(parts) != 3:
        raise NotAuthenticated("malformed token: a JWT has three dot-separated parts")
    return _b64json(parts[0], "header"), _b64json(parts[1], "payload")


def _check_alg(header: Mapping[str, Any]) -> str:
    alg = header.get("alg")
    allowed = ", ".join(ALLOWED_ALGORITHMS)
    if not isinstance(alg, str) or not alg:
        raise NotAuthenticated("malformed token: the header has no alg")
    if alg.lower() == "none":
        raise NotAuthenticated("unsigned token (alg none) refused")
    if alg.upper().startswith("HS"):
        raise NotAuthenticated(
            f"symmetric algorithm {alg} refused: tokens must be signed with {allowed}"
        )
    if alg not in ALLOWED_ALGORITHMS:
        raise NotAuthenticated(f"algorithm {alg!r} not accepted: use one of {allowed}")
    return alg


def _check_signature(token: str, keys: list[Key], alg: str) -> dict[str, Any]:
    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
    registry.max_header_length = 8 * 1024  # x5c chains in the header
    problem = "bad signature"
    for key in keys:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SecurityWarning)
                decoded = jwt.decode(token, key, registry=registry)
        except BadSignatureError:
            continue
        except JoseError as exc:
            problem = f"invalid token: {exc.description or exc.error}"
            continue
        return dict(decoded.claims)
    raise NotAuthenticated(problem)
