"""Time ``TokenVerifier.verify`` on one development token, again and again.

``python -m bench.verify_tokens [--rounds N]`` prints the mean time per call for a token seen
for the first time (a new verifier each round: signature and claims checked) and for the same
token verified again by one verifier (what every request after the first one costs).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from carnet.auth.dev_issuer import DevIssuer
from carnet.auth.tokens import TokenVerifier
from carnet.settings import Settings


async def _measure(rounds: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), dev_issuer=True)
        issuer = DevIssuer.load_or_create(settings.data_dir, settings.audience, 3600)
        token = issuer.mint({"kind": "professional", "rpps": "810000000001", "profession": "10"})
        fresh = [TokenVerifier(settings, issuer) for _ in range(rounds)]
        start = time.perf_counter()
        for verifier in fresh:
            await verifier.verify(token)
        first = (time.perf_counter() - start) / rounds
        verifier = TokenVerifier(settings, issuer)
        await verifier.verify(token)
        start = time.perf_counter()
        for _ in range(rounds):
            await verifier.verify(token)
        again = (time.perf_counter() - start) / rounds
    return first, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    first, again = asyncio.run(_measure(args.rounds))
    print(f"first verification: {first * 1e6:8.1f} µs per token")
    print(f"same token again:   {again * 1e6:8.1f} µs per call ({first / again:.0f}x faster)")


if __name__ == "__main__":
    main()
