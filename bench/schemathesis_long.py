"""schemathesis against a real carnet server at length: the long version of
tests/api/test_openapi_schemathesis.py (same configuration, tests/openapi_fuzz.py), with many
examples per operation and, on request, negative FHIR bodies too (tens of seconds an example).

    .venv/bin/python -m bench.schemathesis_long                         # 50 examples, SQLite
    .venv/bin/python -m bench.schemathesis_long --examples 200 --negative-bodies
    CARNET_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
      .venv/bin/python -m bench.schemathesis_long --backend postgresql

Runs with a valid professional's token, then an invalid one; prints schemathesis's report and
exits non-zero on any failure. Reports (JUnit) go to bench/results/schemathesis/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests import openapi_fuzz
from tests.conftest import running_server

RESULTS = Path(__file__).resolve().parent / "results" / "schemathesis"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50, help="examples per operation")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--negative-bodies",
        action="store_true",
        help="also generate schema-breaking FHIR bodies (slow)",
    )
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory() as data, running_server(args.backend, Path(data)) as srv:
        authorization, ids = openapi_fuzz.seed(srv.url)
        for name, token in (("valid", authorization), ("invalid", "Bearer not-a-token")):
            started = time.monotonic()
            done = openapi_fuzz.run(
                srv.url,
                token,
                ids,
                args.examples,
                RESULTS / name,
                negative_bodies=args.negative_bodies,
            )
            print(done.stdout, done.stderr, sep="\n")
            print(f"{name} token: exit {done.returncode} in {time.monotonic() - started:.0f} s")
            failed |= done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
