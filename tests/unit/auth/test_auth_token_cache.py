"""TokenVerifier remembers verified tokens: by their hash, until exp, five minutes at most."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

import carnet.auth.tokens as tokens
from carnet.auth.dev_issuer import DevIssuer
from carnet.auth.tokens import LEEWAY_SECONDS, TOKEN_CACHE_SECONDS, TokenVerifier
from carnet.domain.errors import NotAuthenticated
from carnet.domain.ins import OID_NIR_TEST, make_nir
from carnet.settings import Settings

NOW = 1_750_000_000.0
INS_A = make_nir("1800175123456")
INS_B = make_nir("2850275123457")


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Checks:
    """Counts the signature checks (the expensive part a cached token skips)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = tokens._check_signature

        def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(tokens, "_check_signature", counting)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dev(data_dir: Path, clock: Clock) -> DevIssuer:
    return DevIssuer.load_or_create(data_dir, "carnet", 3600, clock=clock)


@pytest.fixture
def verifier(settings: Settings, dev: DevIssuer, clock: Clock) -> TokenVerifier:
    return TokenVerifier(settings, dev, clock=clock)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Checks:
    return Checks(monkeypatch)


def patient(dev: DevIssuer, ins: str = INS_A, **extra: str) -> str:
    return dev.mint({"kind": "patient", "ins": ins, **extra})


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(NotAuthenticated) as caught:
        await verifier.verify(token)
    return caught.value.message


async def test_a_verified_token_is_not_verified_again(
    verifier: TokenVerifier, dev: DevIssuer, checks: Checks, clock: Clock
) -> None:
    token = patient(dev)
    first = await verifier.verify(token)
    assert checks.count == 1
    for _ in range(5):
        clock.now += 10
        assert await verifier.verify(token) is first
    # the same token with the Bearer prefix or spaces around is the same entry
    assert await verifier.verify(f"  Bearer {token} ") is first
    assert checks.count == 1


async def test_the_cache_keys_are_hashes_never_tokens(
    verifier: TokenVerifier, dev: DevIssuer
) -> None:
    token = patient(dev)
    await verifier.verify(token)
    assert list(verifier._cache) == [hashlib.sha256(token.encode()).digest()]
    assert all(token not in repr(entry) for entry in verifier._cache.values())


async def test_an_expired_cached_token_is_refused(
    verifier: TokenVerifier, dev: DevIssuer, checks: Checks, clock: Clock
) -> None:
    short = DevIssuer(dev._key, "carnet", 120, clock=clock)  # a token valid for 2 minutes
    token = short.mint({"kind": "patient", "ins": INS_A})
    await verifier.verify(token)
    clock.now = NOW + 120 + LEEWAY_SECONDS - 1  # still within the leeway
    await verifier.verify(token)
    assert checks.count == 1
    clock.now = NOW + 120 + LEEWAY_SECONDS
    assert await refused(verifier, token) == "token expired"
    assert verifier._cache == {}  # the entry is gone, not just skipped
    assert await refused(verifier, token) == "token expired"


async def test_a_cached_token_is_verified_again_after_five_minutes(
    verifier: TokenVerifier, dev: DevIssuer, checks: Checks, clock: Clock
) -> None:
    token = patient(dev)  # valid for an hour
    await verifier.verify(token)
    clock.now = NOW + TOKEN_CACHE_SECONDS - 1
    await verifier.verify(token)
    assert checks.count == 1
    clock.now = NOW + TOKEN_CACHE_SECONDS
    await verifier.verify(token)
    assert checks.count == 2  # verified again, then remembered for five more minutes
    clock.now += TOKEN_CACHE_SECONDS - 1
    await verifier.verify(token)
    assert checks.count == 2


async def test_an_issuer_turned_off_stops_cached_tokens_within_the_maximum(
    settings: Settings, dev: DevIssuer, clock: Clock
) -> None:
    """A key that disappears (rotation, issuer removed) is noticed at the next full check."""
    verifier = TokenVerifier(settings, dev, clock=clock)
    token = patient(dev)
    await verifier.verify(token)
    verifier._issuers.clear()  # as if the issuer's keys were withdrawn
    await verifier.verify(token)  # still remembered
    clock.now += TOKEN_CACHE_SECONDS
    assert (await refused(verifier, token)).startswith("unknown issuer")


async def test_a_clock_going_back_drops_the_entry(
    verifier: TokenVerifier, dev: DevIssuer, checks: Checks, clock: Clock
) -> None:
    token = patient(dev)
    await verifier.verify(token)
    clock.now -= 5
    await verifier.verify(token)  # within the 30 s leeway on nbf and iat
    assert checks.count == 2


async def test_refusals_are_never_remembered(
    carnet_env: pytest.MonkeyPatch, dev: DevIssuer, checks: Checks, clock: Clock
) -> None:
    verifier = TokenVerifier(Settings.from_env(), dev, clock=clock)
    token = patient(dev, ins_oid=OID_NIR_TEST)  # refused: CARNET_ALLOW_TEST_INS is off
    for _ in range(3):
        assert (await refused(verifier, token)).startswith("claim ins_oid: test INS")
    assert checks.count == 3
    assert verifier._cache == {}

    # a token not valid yet is refused, then accepted once it is: no negative caching either
    early = DevIssuer(dev._key, "carnet", 3600, clock=lambda: NOW + 600)
    later = early.mint({"kind": "patient", "ins": INS_A})
    assert await refused(verifier, later) == "token not valid yet (nbf is in the future)"
    clock.now = NOW + 600
    assert (await verifier.verify(later)).ins == INS_A


async def test_a_tampered_copy_of_a_cached_token_is_refused(
    verifier: TokenVerifier, dev: DevIssuer, data_dir: Path
) -> None:
    token = patient(dev)
    await verifier.verify(token)
    header, payload, signature = token.split(".")
    forged_signature = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    assert await refused(verifier, f"{header}.{payload}.{forged_signature}") == "bad signature"
    # same header and claims, signed by another key: a different token, checked on its own
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other = ECKey.generate_key("P-256", private=True)
    forged = jwt.encode(
        {"alg": "ES256", "kid": dev.kid, "typ": "JWT"}, claims, other, algorithms=["ES256"]
    )
    assert await refused(verifier, forged) == "bad signature"
    assert len(verifier._cache) == 1


async def test_different_tokens_do_not_collide(verifier: TokenVerifier, dev: DevIssuer) -> None:
    a = patient(dev, INS_A)
    b = patient(dev, INS_B)
    pro = dev.mint({"kind": "professional", "rpps": "810000000009", "profession": "10"})
    for _ in range(2):
        assert (await verifier.verify(a)).ins == INS_A
        assert (await verifier.verify(b)).ins == INS_B
        assert (await verifier.verify(pro)).rpps == "810000000009"
    # two tokens for the same patient are two entries, each with its own expiry
    again = patient(dev, INS_A)
    assert again != a
    assert (await verifier.verify(again)).ins == INS_A
    assert len(verifier._cache) == 4


async def test_the_cache_is_bounded_least_recently_used_out(
    settings: Settings, dev: DevIssuer, clock: Clock, checks: Checks
) -> None:
    verifier = TokenVerifier(settings, dev, clock=clock, cache_size=3)
    t = [patient(dev) for _ in range(5)]
    for token in t[:3]:
        await verifier.verify(token)
    await verifier.verify(t[0])  # t[0] used again: t[1] is now the oldest
    assert checks.count == 3
    await verifier.verify(t[3])
    await verifier.verify(t[4])
    assert len(verifier._cache) == 3
    assert checks.count == 5
    await verifier.verify(t[0])
    await verifier.verify(t[3])
    await verifier.verify(t[4])
    assert checks.count == 5  # still remembered
    await verifier.verify(t[1])  # pushed out: verified again
    assert checks.count == 6
    assert len(verifier._cache) == 3


async def test_default_bound(settings: Settings, dev: DevIssuer) -> None:
    verifier = TokenVerifier(settings, dev)
    assert verifier._cache_size == tokens.TOKEN_CACHE_SIZE == 10_000
    assert tokens.TOKEN_CACHE_SECONDS == 300.0


async def test_cache_off(settings: Settings, dev: DevIssuer, clock: Clock, checks: Checks) -> None:
    verifier = TokenVerifier(settings, dev, clock=clock, cache_size=0)
    token = patient(dev)
    await verifier.verify(token)
    await verifier.verify(token)
    assert checks.count == 2
    assert verifier._cache == {}
