"""TokenVerifier: signature, issuer, audience, times and the claims contract (docs/tokens.md)."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from carnet.auth.dev_issuer import DevIssuer
from carnet.auth.tokens import DEV_ISSUER_URL, TokenVerifier, import_jwks, parse_oidc_issuers
from carnet.domain.actors import AccessMode, Actor, ActorKind
from carnet.domain.errors import ConfigurationError, NotAuthenticated
from carnet.domain.ins import OID_NIA, OID_NIR, OID_NIR_TEST, make_nir
from carnet.settings import Settings

NOW = 1_750_000_000.0
PATIENT_INS = make_nir("1800175123456")  # 180017512345660
PSC = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"
FC = "https://fcp.integ01.dev-franceconnect.fr"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(key: Any, claims: dict[str, Any], alg: str, kid: str | None = None) -> str:
    header: dict[str, Any] = {"alg": alg}
    if kid is not None:
        header["kid"] = kid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # "EdDSA is deprecated via RFC 9864"
        return jwt.encode(header, claims, key, algorithms=[alg])


def external_claims(iss: str, **extra: Any) -> dict[str, Any]:
    return {
        "iss": iss,
        "sub": "f:abc-123",
        "aud": "carnet",
        "iat": int(NOW),
        "exp": int(NOW) + 600,
        **extra,
    }


def public_jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [dict(k.as_dict(private=False)) for k in keys]}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dev(data_dir: Path, clock: Clock) -> DevIssuer:
    return DevIssuer.load_or_create(data_dir, "carnet", 3600, clock=clock)


@pytest.fixture
def verifier(settings: Settings, dev: DevIssuer, clock: Clock) -> TokenVerifier:
    return TokenVerifier(settings, dev, clock=clock)


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(NotAuthenticated) as caught:
        await verifier.verify(token)
    assert isinstance(caught.value, NotAuthenticated)
    return caught.value.message


# ----------------------------------------------------------------------------- round trips


async def test_patient_round_trip(verifier: TokenVerifier, dev: DevIssuer) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS, "name": "Marie Curie"})
    actor = await verifier.verify(token)
    assert actor == Actor(
        kind=ActorKind.PATIENT,
        subject=f"ins:{PATIENT_INS}",
        issuer=DEV_ISSUER_URL,
        ins=PATIENT_INS,
        ins_oid=OID_NIR,
        name="Marie Curie",
    )
    assert actor.id == "ins:180017512345660"


async def test_patient_round_trip_with_nia(verifier: TokenVerifier, dev: DevIssuer) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS, "ins_oid": OID_NIA})
    actor = await verifier.verify(f"Bearer {token}")
    assert actor.ins_oid == OID_NIA
    assert actor.name is None


async def test_professional_round_trip(verifier: TokenVerifier, dev: DevIssuer) -> None:
    token = dev.mint(
        {
            "kind": "professional",
            "rpps": "810000000009",
            "profession": "10",
            "specialty": "SM26",
            "structure": "750712184",
            "mode": "centre_15",
            "name": "Dr Jean Dupont",
        }
    )
    actor = await verifier.verify(token)
    assert actor == Actor(
        kind=ActorKind.PROFESSIONAL,
        subject="rpps:810000000009",
        issuer=DEV_ISSUER_URL,
        rpps="810000000009",
        profession="10",
        specialty="SM26",
        structure="750712184",
        mode=AccessMode.CENTRE_15,
        name="Dr Jean Dupont",
    )
    assert actor.id == "rpps:810000000009"


async def test_bris_de_glace_round_trip(verifier: TokenVerifier, dev: DevIssuer) -> None:
    token = dev.mint(
        {
            "kind": "professional",
            "rpps": "810000000017",
            "profession": "10",
            "mode": "bris_de_glace",
            "reason": "patient inconscient aux urgences",
        }
    )
    actor = await verifier.verify(token)
    assert actor.mode is AccessMode.BRIS_DE_GLACE
    assert actor.reason == "patient inconscient aux urgences"
    assert actor.specialty is None
    assert actor.structure is None


# ----------------------------------------------------------------------------- times


async def test_expired_token(verifier: TokenVerifier, dev: DevIssuer, clock: Clock) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS})
    clock.now = NOW + 3600 + 31
    assert await refused(verifier, token) == "token expired"


async def test_expiry_leeway_is_30_seconds(
    verifier: TokenVerifier, dev: DevIssuer, clock: Clock
) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS})
    clock.now = NOW + 3600 + 29
    assert (await verifier.verify(token)).ins == PATIENT_INS


async def test_not_yet_valid(verifier: TokenVerifier, dev: DevIssuer, clock: Clock) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS})
    clock.now = NOW - 60
    message = await refused(verifier, token)
    assert message == "token not valid yet (nbf is in the future)"
    clock.now = NOW - 20  # within the leeway
    assert (await verifier.verify(token)).ins == PATIENT_INS


async def test_token_without_exp_is_refused(settings: Settings, clock: Clock) -> None:
    key = ECKey.generate_key("P-256")
    config = [{"issuer": FC, "jwks": public_jwks(key), "kind": "patient"}]
    verifier = TokenVerifier(
        Settings(oidc_issuers=json.dumps(config), audience="carnet"), clock=clock
    )
    claims = external_claims(FC, ins=PATIENT_INS)
    del claims["exp"]
    assert await refused(verifier, sign(key, claims, "ES256")) == "missing claim exp"


# ----------------------------------------------------------------------------- refusals


async def test_wrong_audience(settings: Settings, data_dir: Path, clock: Clock) -> None:
    other = DevIssuer.load_or_create(data_dir, "another-service", 3600, clock=clock)
    verifier = TokenVerifier(settings, other, clock=clock)
    token = other.mint({"kind": "patient", "ins": PATIENT_INS})
    message = await refused(verifier, token)
    assert message == "audience 'another-service' not accepted: this server expects 'carnet'"


async def test_unknown_issuer(verifier: TokenVerifier) -> None:
    key = ECKey.generate_key("P-256")
    token = sign(key, external_claims("https://idp.example.org", ins=PATIENT_INS), "ES256")
    message = await refused(verifier, token)
    assert message == "unknown issuer 'https://idp.example.org': not one of the configured issuers"


async def test_tampered_payload(verifier: TokenVerifier, dev: DevIssuer) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS})
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other_ins = make_nir("2920375999888")
    claims["ins"] = other_ins
    forged = f"{header}.{b64(claims)}.{signature}"
    assert await refused(verifier, forged) == "bad signature"


async def test_tampered_signature(verifier: TokenVerifier, dev: DevIssuer) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS})
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[5] ^= 0xFF
    bad = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert await refused(verifier, f"{header}.{payload}.{bad}") == "bad signature"


async def test_signed_by_another_key_with_dev_kid(verifier: TokenVerifier, dev: DevIssuer) -> None:
    intruder = ECKey.generate_key("P-256")
    claims = external_claims(DEV_ISSUER_URL, carnet_kind="patient", ins=PATIENT_INS)
    token = sign(intruder, claims, "ES256", kid=dev.kid)
    assert await refused(verifier, token) == "bad signature"


async def test_alg_none_refused(verifier: TokenVerifier) -> None:
    claims = external_claims(DEV_ISSUER_URL, carnet_kind="patient", ins=PATIENT_INS)
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert await refused(verifier, token) == "unsigned token (alg none) refused"
    token = f"{b64({'alg': 'None'})}.{b64(claims)}."
    assert await refused(verifier, token) == "unsigned token (alg none) refused"


async def test_hs256_refused(verifier: TokenVerifier, dev: DevIssuer) -> None:
    # The classic confusion attack: HMAC keyed with the public key's bytes.
    secret = OctKey.import_key(json.dumps(dev.jwks()["keys"][0]).encode())
    claims = external_claims(DEV_ISSUER_URL, carnet_kind="patient", ins=PATIENT_INS)
    token = sign(secret, claims, "HS256", kid=dev.kid)
    message = await refused(verifier, token)
    assert message == (
        "symmetric algorithm HS256 refused: tokens must be signed with RS256, ES256, EdDSA, Ed25519"
    )


async def test_other_asymmetric_algorithm_refused(verifier: TokenVerifier) -> None:
    key = ECKey.generate_key("P-384")
    claims = external_claims(DEV_ISSUER_URL, carnet_kind="patient", ins=PATIENT_INS)
    message = await refused(verifier, sign(key, claims, "ES384"))
    assert message.startswith("algorithm 'ES384' not accepted")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "missing bearer token"),
        ("abc", "malformed token: a JWT has three dot-separated parts"),
        ("a.b.c.d.e", "encrypted tokens (JWE) are not accepted: send a signed JWT"),
        ("e30.e30.", "malformed token: the header has no alg"),
        ("!!.e30.x", "malformed token: the header is not base64url"),
        ("WzFd.e30.x", "malformed token: the header is not a JSON object"),
        ("x" * 20000, "token too long (more than 16384 characters)"),
    ],
)
async def test_malformed_tokens(verifier: TokenVerifier, token: str, message: str) -> None:
    assert await refused(verifier, token) == message


async def test_bris_de_glace_without_reason(verifier: TokenVerifier, data_dir: Path) -> None:
    # DevIssuer.mint refuses this request, so sign with the dev key file directly.
    key = ECKey.import_key(json.loads((data_dir / "dev-issuer-key.json").read_text()))
    claims = external_claims(
        DEV_ISSUER_URL,
        carnet_kind="professional",
        rpps="810000000009",
        profession="10",
        mode="bris_de_glace",
    )
    token = sign(key, claims, "ES256", kid=key.thumbprint())
    assert await refused(verifier, token) == "bris_de_glace needs a reason (claim reason)"
    claims["reason"] = "   "
    token = sign(key, claims, "ES256", kid=key.thumbprint())
    assert await refused(verifier, token) == "bris_de_glace needs a reason (claim reason)"


async def test_dev_issuer_off_refuses_its_tokens(
    carnet_env: pytest.MonkeyPatch, dev: DevIssuer, clock: Clock
) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS})
    carnet_env.setenv("CARNET_DEV_ISSUER", "0")
    settings = Settings.from_env()
    assert settings.dev_issuer is False
    verifier = TokenVerifier(settings, dev, clock=clock)
    assert verifier.issuers == ()
    message = await refused(verifier, token)
    assert message == (
        "unknown issuer 'urn:carnet:dev-issuer': the development issuer is off on this server "
        "(CARNET_DEV_ISSUER)"
    )


async def test_dev_issuer_loaded_from_data_dir_when_not_given(
    settings: Settings, dev: DevIssuer, clock: Clock
) -> None:
    verifier = TokenVerifier(settings, clock=clock)
    assert verifier.issuers == (DEV_ISSUER_URL,)
    actor = await verifier.verify(dev.mint({"kind": "patient", "ins": PATIENT_INS}))
    assert actor.ins == PATIENT_INS


async def test_test_ins_oid_needs_allow_test_ins(
    carnet_env: pytest.MonkeyPatch, dev: DevIssuer, clock: Clock
) -> None:
    token = dev.mint({"kind": "patient", "ins": PATIENT_INS, "ins_oid": OID_NIR_TEST})
    message = await refused(TokenVerifier(Settings.from_env(), dev, clock=clock), token)
    assert message.startswith("claim ins_oid: test INS (1.2.250.1.213.1.4.10) are refused")
    carnet_env.setenv("CARNET_ALLOW_TEST_INS", "1")
    actor = await TokenVerifier(Settings.from_env(), dev, clock=clock).verify(token)
    assert actor.ins_oid == OID_NIR_TEST


async def test_claim_checks_on_dev_key(verifier: TokenVerifier, data_dir: Path) -> None:
    key = ECKey.import_key(json.loads((data_dir / "dev-issuer-key.json").read_text()))
    kid = key.thumbprint()

    async def message_for(**claims: Any) -> str:
        return await refused(
            verifier, sign(key, external_claims(DEV_ISSUER_URL, **claims), "ES256", kid)
        )

    assert await message_for(ins=PATIENT_INS) == (
        "missing claim carnet_kind ('patient' or 'professional')"
    )
    assert await message_for(carnet_kind="system") == (
        "claim carnet_kind must be 'patient' or 'professional', got 'system'"
    )
    assert await message_for(carnet_kind="patient") == "missing claim ins for a patient"
    assert (await message_for(carnet_kind="patient", ins="180017512345661")).startswith(
        "claim ins: INS 180017512345661: wrong NIR key 61"
    )
    assert await message_for(carnet_kind="professional", rpps="810000000009") == (
        "missing claim profession for a professional"
    )
    assert await message_for(carnet_kind="professional", profession="10") == (
        "missing claim rpps for a professional"
    )
    assert await message_for(
        carnet_kind="professional", rpps="810000000009", profession="10", mode="urgence"
    ) == ("claim mode must be one of normal, bris_de_glace, centre_15, got 'urgence'")
    assert await message_for(
        carnet_kind="professional", rpps=["810000000009"], profession="10"
    ) == ("claim rpps must be a string")
    assert await message_for(carnet_kind="patient", ins=PATIENT_INS, aud=["x", "y"]) == (
        "audience ['x', 'y'] not accepted: this server expects 'carnet'"
    )
    assert await message_for(carnet_kind="patient", ins=PATIENT_INS, exp="tomorrow") == (
        "claim exp must be a number of seconds since 1970 (NumericDate)"
    )
    assert await message_for(carnet_kind="patient", ins=PATIENT_INS, sub="") == (
        "missing claim sub"
    )
    # a list audience containing ours is accepted
    token = sign(
        key,
        external_claims(
            DEV_ISSUER_URL, carnet_kind="patient", ins=PATIENT_INS, aud=["other", "carnet"]
        ),
        "ES256",
        kid,
    )
    assert (await verifier.verify(token)).ins == PATIENT_INS


# ----------------------------------------------------------------------------- external issuers


async def test_inline_jwks_issuer_with_claim_mapping(clock: Clock) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "psc-2025"})
    config = [
        {
            "issuer": PSC,
            "jwks": public_jwks(key),
            "audience": "carnet-psc-client",
            "kind": "professional",
            "claims": {
                "rpps": "preferred_username",
                "profession": "SubjectRefPro.exercices.0.codeProfession",
                "specialty": "SubjectRefPro.exercices.0.codeSavoirFaire",
                "name": "given_name",
            },
        }
    ]
    settings = Settings(oidc_issuers=json.dumps(config), audience="carnet")
    verifier = TokenVerifier(settings, clock=clock)
    assert verifier.issuers == (PSC,)
    claims = external_claims(
        PSC,
        aud=["carnet-psc-client", "account"],
        preferred_username="810000000009",
        given_name="Jeanne",
        SubjectRefPro={"exercices": [{"codeProfession": "10", "codeSavoirFaire": "SM54"}]},
    )
    actor = await verifier.verify(sign(key, claims, "RS256", kid="psc-2025"))
    assert actor == Actor(
        kind=ActorKind.PROFESSIONAL,
        subject="f:abc-123",
        issuer=PSC,
        rpps="810000000009",
        profession="10",
        specialty="SM54",
        name="Jeanne",
    )

    # the issuer's audience replaces settings.audience for this issuer
    claims_for_us = {**claims, "aud": "carnet"}
    message = await refused(verifier, sign(key, claims_for_us, "RS256", kid="psc-2025"))
    assert message == "audience 'carnet' not accepted: this server expects 'carnet-psc-client'"

    # the mapped claim is looked for under the provider's name
    missing = {k: v for k, v in claims.items() if k != "SubjectRefPro"}
    message = await refused(verifier, sign(key, missing, "RS256", kid="psc-2025"))
    assert message == (
        "missing claim profession (from 'SubjectRefPro.exercices.0.codeProfession') "
        "for a professional"
    )

    # an issuer for professionals cannot vouch for a patient
    patient = {**claims, "carnet_kind": "patient"}
    message = await refused(verifier, sign(key, patient, "RS256", kid="psc-2025"))
    assert message == (
        f"issuer '{PSC}' authenticates professionals, but the token says carnet_kind 'patient'"
    )


async def test_inline_eddsa_patient_issuer(clock: Clock) -> None:
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "fc-1"})
    config = [
        {
            "issuer": FC,
            "jwks": public_jwks(key),
            "kind": "patient",
            "claims": {"ins": "ins_nir", "name": "given_name"},
        }
    ]
    verifier = TokenVerifier(Settings(oidc_issuers=json.dumps(config)), clock=clock)
    claims = external_claims(FC, ins_nir=PATIENT_INS, given_name="Marie")
    actor = await verifier.verify(sign(key, claims, "EdDSA", kid="fc-1"))
    assert (actor.kind, actor.ins, actor.ins_oid, actor.name) == (
        ActorKind.PATIENT,
        PATIENT_INS,
        OID_NIR,
        "Marie",
    )
    actor = await verifier.verify(sign(key, claims, "Ed25519", kid="fc-1"))
    assert actor.ins == PATIENT_INS
    other = OKPKey.generate_key("Ed25519", parameters={"kid": "fc-1"})
    assert await refused(verifier, sign(other, claims, "EdDSA", kid="fc-1")) == "bad signature"


class JwksServer:
    """An in-process JWKS endpoint (httpx.MockTransport) that counts its requests."""

    def __init__(self, *keys: Any) -> None:
        self.keys = list(keys)
        self.requests = 0
        self.status = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url == httpx.URL(f"{PSC}/protocol/openid-connect/certs")
        self.requests += 1
        if self.status != 200:
            return httpx.Response(self.status, text="down")
        return httpx.Response(200, json=public_jwks(*self.keys))


def uri_verifier(server: JwksServer, clock: Clock) -> tuple[TokenVerifier, httpx.AsyncClient]:
    config = [
        {
            "issuer": PSC,
            "jwks_uri": f"{PSC}/protocol/openid-connect/certs",
            "kind": "professional",
            "claims": {"rpps": "preferred_username"},
        }
    ]
    http = httpx.AsyncClient(transport=httpx.MockTransport(server.handler))
    settings = Settings(oidc_issuers=json.dumps(config), audience="carnet")
    return TokenVerifier(settings, http=http, clock=clock), http


def psc_token(key: Any, kid: str, clock: Clock) -> str:
    claims = {
        "iss": PSC,
        "sub": "psc-sub",
        "aud": "carnet",
        "iat": int(clock.now),
        "exp": int(clock.now) + 300,
        "preferred_username": "810000000009",
        "profession": "21",
    }
    return sign(key, claims, "ES256", kid=kid)


async def test_jwks_uri_cache_ttl_and_kid_rotation(clock: Clock) -> None:
    old = ECKey.generate_key("P-256", parameters={"kid": "old"})
    new = ECKey.generate_key("P-256", parameters={"kid": "new"})
    server = JwksServer(old)
    verifier, http = uri_verifier(server, clock)
    async with http:
        actor = await verifier.verify(psc_token(old, "old", clock))
        assert (actor.rpps, actor.profession, actor.issuer) == ("810000000009", "21", PSC)
        assert server.requests == 1

        # cached: no new request within the TTL
        clock.now += 300
        await verifier.verify(psc_token(old, "old", clock))
        assert server.requests == 1

        # the issuer rotates: an unknown kid triggers one refetch
        server.keys = [new]
        clock.now += 15
        actor = await verifier.verify(psc_token(new, "new", clock))
        assert actor.rpps == "810000000009"
        assert server.requests == 2
        # the old key is gone from the refreshed cache
        message = await refused(verifier, psc_token(old, "old", clock))
        assert message == f"no key 'old' for ES256 in the JWKS of issuer '{PSC}'"
        assert server.requests == 2  # refetches are rate limited (10 s)

        # unknown kids do not refetch more than once every 10 s
        clock.now += 5
        message = await refused(verifier, psc_token(old, "ghost", clock))
        assert message == f"no key 'ghost' for ES256 in the JWKS of issuer '{PSC}'"
        assert server.requests == 2
        clock.now += 6
        await refused(verifier, psc_token(old, "ghost", clock))
        assert server.requests == 3

        # after the TTL (10 minutes) the JWKS is fetched again
        clock.now += 600
        await verifier.verify(psc_token(new, "new", clock))
        assert server.requests == 4


async def test_jwks_uri_unavailable(clock: Clock) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    server = JwksServer(key)
    server.status = 503
    verifier, http = uri_verifier(server, clock)
    async with http:
        message = await refused(verifier, psc_token(key, "k1", clock))
        assert message == (
            f"the keys of issuer '{PSC}' are unavailable: "
            f"{PSC}/protocol/openid-connect/certs answered HTTP 503"
        )
        assert server.requests == 1
        # the failure is not retried on every request ...
        await refused(verifier, psc_token(key, "k1", clock))
        assert server.requests == 1
        # ... but after the rate limit, and then the cached keys stay usable
        server.status = 200
        clock.now += 11
        assert (await verifier.verify(psc_token(key, "k1", clock))).rpps == "810000000009"
        assert server.requests == 2
        server.status = 500
        clock.now += 700
        assert (await verifier.verify(psc_token(key, "k1", clock))).rpps == "810000000009"
        assert server.requests == 3
        # ... for an hour at most after the last successful fetch
        clock.now += 3000
        message = await refused(verifier, psc_token(key, "k1", clock))
        assert message == (
            f"the keys of issuer '{PSC}' are unavailable: "
            f"{PSC}/protocol/openid-connect/certs answered HTTP 500"
        )
        assert server.requests == 4


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "CARNET_OIDC_ISSUERS is not valid JSON: Expecting property name"),
        ('{"issuer": "x"}', "CARNET_OIDC_ISSUERS must be a JSON list of objects"),
        ('["x"]', "CARNET_OIDC_ISSUERS[0] must be a JSON object"),
        (
            '[{"jwks_uri": "https://a.example/jwks"}]',
            "CARNET_OIDC_ISSUERS[0]: issuer: field required",
        ),
        (
            '[{"issuer": "https://a.example", "jwks_uri": "https://a.example/j", "audiance": "x"}]',
            "CARNET_OIDC_ISSUERS[0]: audiance: extra inputs are not permitted",
        ),
        (
            '[{"issuer": "https://a.example"}]',
            "CARNET_OIDC_ISSUERS[0] (https://a.example): give exactly one of jwks_uri and jwks",
        ),
        (
            '[{"issuer": "https://a.example", "jwks_uri": "http://a.example/jwks"}]',
            "CARNET_OIDC_ISSUERS[0] (https://a.example): jwks_uri must be an https:// URL",
        ),
        (
            '[{"issuer": "https://a.example", "jwks_uri": "https://a.example/j", "kind": "robot"}]',
            "CARNET_OIDC_ISSUERS[0]: kind: input should be 'professional' or 'patient'",
        ),
        (
            '[{"issuer": "https://a.example", "jwks_uri": "https://a.example/j",'
            ' "claims": {"sub": "uid"}}]',
            "CARNET_OIDC_ISSUERS[0] (https://a.example): claims: cannot map sub",
        ),
        (
            '[{"issuer": "https://a.example",'
            ' "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}]',
            "CARNET_OIDC_ISSUERS[0] (https://a.example): jwks: no usable signature key in the JWKS",
        ),
        (
            '[{"issuer": "urn:carnet:dev-issuer", "jwks_uri": "https://a.example/j"}]',
            "CARNET_OIDC_ISSUERS[0] (urn:carnet:dev-issuer): urn:carnet:dev-issuer is the "
            "development issuer",
        ),
        (
            '[{"issuer": "https://a.example", "jwks_uri": "https://a.example/j"},'
            ' {"issuer": "https://a.example", "jwks_uri": "https://a.example/k"}]',
            "CARNET_OIDC_ISSUERS[1] (https://a.example): issuer listed twice",
        ),
    ],
)
def test_bad_oidc_issuers_configuration(raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_oidc_issuers(raw)
    assert caught.value.message.startswith(message), caught.value.message
    with pytest.raises(ConfigurationError):
        TokenVerifier(Settings(oidc_issuers=raw))


def test_short_rsa_keys_are_ignored() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # "Key size should be >= 2048 bits"
        short = RSAKey.generate_key(1024, parameters={"kid": "short"})
    good = RSAKey.generate_key(2048, parameters={"kid": "good"})
    assert [k.kid for k in import_jwks(public_jwks(short, good))] == ["good"]
    with pytest.raises(ValueError) as caught:
        import_jwks(public_jwks(short))
    assert str(caught.value) == (
        "no usable signature key in the JWKS (RSA of 2048 bits or more, EC, OKP)"
    )


def test_oidc_issuers_from_environment(carnet_env: pytest.MonkeyPatch) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "a"})
    carnet_env.setenv(
        "CARNET_OIDC_ISSUERS",
        json.dumps(
            [
                {"issuer": PSC, "jwks_uri": f"{PSC}/certs", "kind": "professional"},
                {"issuer": FC, "jwks": public_jwks(key), "kind": "patient"},
                {
                    "issuer": "http://localhost:8080/realms/dev",
                    "jwks_uri": "http://localhost:8080/c",
                },
            ]
        ),
    )
    configs = parse_oidc_issuers(Settings.from_env().oidc_issuers)
    assert [(c.issuer, c.kind, c.jwks_uri) for c in configs] == [
        (PSC, ActorKind.PROFESSIONAL, f"{PSC}/certs"),
        (FC, ActorKind.PATIENT, None),
        ("http://localhost:8080/realms/dev", None, "http://localhost:8080/c"),
    ]
    assert [k.kid for k in configs[1].keys] == ["a"]
    assert not configs[1].keys[0].is_private
    verifier = TokenVerifier(Settings.from_env())
    assert verifier.issuers == (PSC, FC, "http://localhost:8080/realms/dev", DEV_ISSUER_URL)
