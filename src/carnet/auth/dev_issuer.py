"""The built-in development issuer (CARNET_DEV_ISSUER=1): docs/tokens.md §"The development issuer".

It keeps one EC P-256 private key in ``<data_dir>/dev-issuer-key.json`` (mode 0600, created on
first use) and mints ES256 tokens that follow the claims contract of :mod:`carnet.auth.tokens`.
It exists for tests, demos and local development: never turn it on for real patients.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from joserfc import jwt
from joserfc.jwk import ECKey
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from carnet.auth.tokens import (
    DEFAULT_INS_OID,
    DEV_ISSUER_URL,
    check_ins_oid,
)
from carnet.domain.actors import AccessMode
from carnet.domain.errors import ConfigurationError, Invalid, Rejected
from carnet.domain.ins import check_ins_value
from carnet.domain.professionals import check_idnatps

KEY_FILE_NAME = "dev-issuer-key.json"
ALGORITHM = "ES256"

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
_Code = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[0-9A-Za-z._:-]+$"
    ),
]
_Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatientTokenRequest(_Request):
    """``{"kind": "patient", "ins": "<15 chars>"}``, optional ``ins_oid`` and ``name``."""

    kind: Literal["patient"]
    ins: _Code
    ins_oid: _Code | None = None
    name: _Text | None = None


class ProfessionalTokenRequest(_Request):
    """``{"kind": "professional", "rpps": ..., "profession": ...}`` and optional fields."""

    kind: Literal["professional"]
    rpps: _Code
    profession: _Code
    specialty: _Code | None = None
    structure: _Code | None = None
    mode: AccessMode = AccessMode.NORMAL
    reason: _Reason | None = None
    name: _Text | None = None


TokenRequest = PatientTokenRequest | ProfessionalTokenRequest


def parse_token_request(request: object) -> TokenRequest:
    """Validate the JSON body of ``POST /dev/token``; :class:`InvalidInput` names the field."""
    if not isinstance(request, Mapping):
        raise Invalid("the token request must be a JSON object")
    kind = request.get("kind")
    model: type[TokenRequest]
    if kind == "patient":
        model = PatientTokenRequest
    elif kind == "professional":
        model = ProfessionalTokenRequest
    elif kind is None:
        raise Invalid("kind: field required ('patient' or 'professional')", field="kind")
    else:
        raise Invalid(f"kind: must be 'patient' or 'professional', got {kind!r}", field="kind")
    try:
        parsed = model.model_validate(dict(request))
    except ValidationError as exc:
        message, field = _describe(exc)
        raise Invalid(message, field=field) from None
    if isinstance(parsed, ProfessionalTokenRequest):
        try:
            check_idnatps(parsed.rpps, field="rpps")
        except Rejected as exc:
            raise Invalid(f"rpps: {exc.message}", field="rpps") from None
        if parsed.mode is AccessMode.BRIS_DE_GLACE and not parsed.reason:
            raise Invalid(
                "reason: required when mode is bris_de_glace (say why the record is opened)",
                field="reason",
            )
    else:
        try:
            check_ins_value(parsed.ins, field="ins")
        except Rejected as exc:
            raise Invalid(f"ins: {exc.message}", field="ins") from None
        if parsed.ins_oid is not None:
            try:
                check_ins_oid(parsed.ins_oid, allow_test=True)
            except ValueError as exc:
                raise Invalid(f"ins_oid: {exc}", field="ins_oid") from None
    return parsed


def _describe(exc: ValidationError) -> tuple[str, str | None]:
    parts: list[str] = []
    first_field: str | None = None
    for error in exc.errors(include_url=False):
        field = ".".join(str(p) for p in error["loc"]) or "body"
        first_field = first_field or field
        kind = error["type"]
        if kind == "missing":
            text = "field required"
        elif kind == "extra_forbidden":
            text = "unknown field (not allowed here)"
        elif kind == "string_pattern_mismatch":
            text = "must be a code made of letters, digits, '.', '_', ':' or '-'"
        else:
            msg = str(error["msg"])
            text = msg[:1].lower() + msg[1:]
        parts.append(f"{field}: {text}")
    return "; ".join(parts), first_field


class DevIssuer:
    """Mints ES256 tokens for ``urn:carnet:dev-issuer``.

    Build it with :meth:`load_or_create`; the constructor takes an already loaded private key.
    """

    issuer = DEV_ISSUER_URL

    def __init__(
        self,
        key: ECKey,
        audience: str,
        ttl: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not key.is_private or key.curve_name != "P-256":
            raise ConfigurationError("the development issuer needs an EC P-256 private key")
        if ttl <= 0:
            raise ConfigurationError(f"the token lifetime must be positive, got {ttl} s")
        if not audience:
            raise ConfigurationError("the development issuer needs an audience")
        kid = key.thumbprint()
        self._key = ECKey.import_key(
            {**key.as_dict(private=True), "kid": kid, "alg": ALGORITHM, "use": "sig"}
        )
        self.kid = kid
        self.audience = audience
        self.ttl = ttl
        self._clock = clock

    @classmethod
    def load_or_create(
        cls,
        data_dir: Path,
        audience: str,
        ttl: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> DevIssuer:
        """Load ``data_dir/dev-issuer-key.json``, creating it (mode 0600) on first use."""
        path = Path(data_dir) / KEY_FILE_NAME
        if not path.exists():
            key = ECKey.generate_key("P-256", private=True)
            text = json.dumps(key.as_dict(private=True), indent=2) + "\n"
            _create_private_file(path, text)
        return cls(_load_key(path), audience, ttl, clock=clock)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS (``{"keys": [...]}``): never the private part."""
        return {"keys": [dict(self._key.as_dict(private=False))]}

    def mint(self, request: Mapping[str, Any]) -> str:
        """A signed token for the JSON of ``POST /dev/token`` (see docs/tokens.md).

        Raises :class:`carnet.domain.errors.Invalid` naming the faulty field.
        """
        return self._mint(parse_token_request(request))

    def _mint(self, request: TokenRequest) -> str:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
            "carnet_kind": request.kind,
        }
        if isinstance(request, PatientTokenRequest):
            ins = check_ins_value(request.ins, field="ins")
            claims["sub"] = f"ins:{ins}"
            claims["ins"] = ins
            claims["ins_oid"] = check_ins_oid(request.ins_oid or DEFAULT_INS_OID, allow_test=True)
        else:
            rpps = check_idnatps(request.rpps, field="rpps")
            claims["sub"] = f"rpps:{rpps}"
            claims["rpps"] = rpps
            claims["profession"] = request.profession
            claims["mode"] = request.mode.value
            for field in ("specialty", "structure", "reason"):
                value = getattr(request, field)
                if value is not None:
                    claims[field] = value
        if request.name is not None:
            claims["name"] = request.name
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])


def _load_key(path: Path) -> ECKey:
    hint = f"delete {path} to create a new development key"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the development issuer key {path}: {exc}") from None
    except ValueError:
        raise ConfigurationError(f"{path} is not valid JSON ({hint})") from None
    try:
        key = ECKey.import_key(data)
    except Exception:
        raise ConfigurationError(f"{path} is not an EC private JWK ({hint})") from None
    if not key.is_private or key.curve_name != "P-256":
        raise ConfigurationError(f"{path} is not an EC P-256 private key ({hint})")
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
    return key


def _create_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically, never replacing an existing file.

    If another process created the file in the meantime, its key wins (we load it afterwards).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".dev-issuer-key.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return
        except OSError:
            # Filesystems without hard links: exclusive create instead.
            try:
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return
            with os.fdopen(out, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(text)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
