"""A national-shaped population for the search scenario: ``carnet demo --patients N --documents M
--identities FILE`` (the project's bulk generator) loads it straight into the database, and
writes the identities it made to a CSV file (``kind,id,oid,profession,specialty,structure``).

The benchmark then searches a sample of those patients, each with a professional the generated
data authorises for that patient: the médecin traitant (``records.treating_physician``), else
a professional who fed the record (``record_professionals``), found in the database and
described (profession, specialty, structure) by the CSV.

Until the generator exists, :func:`bulk_generator_available` says so and the benchmark loads a
smaller population through the HTTP API instead (bench/run.py), and records that it did.
"""

from __future__ import annotations

import csv
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CSV_HEADER = ("kind", "id", "oid", "profession", "specialty", "structure")
PATIENT_KINDS = frozenset({"patient"})
PROFESSIONAL_KINDS = frozenset({"professional", "ps", "practitioner"})
_SIZE = re.compile(r"^\s*([0-9_,]+)\s*[xX×]\s*([0-9_,]+)\s*$")


def parse_population(text: str) -> tuple[int, int]:
    """``"100000x2000000"`` → (patients, documents)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not PATIENTSxDOCUMENTS: {text!r}")
    patients, documents = (int(re.sub(r"[_,]", "", g)) for g in m.groups())
    if patients < 1 or documents < 0:
        raise ValueError(f"population must have patients ≥ 1 and documents ≥ 0: {text!r}")
    return patients, documents


@dataclass(frozen=True)
class Professional:
    rpps: str
    oid: str
    profession: str
    specialty: str | None
    structure: str | None

    @property
    def actor_id(self) -> str:
        return f"rpps:{self.rpps}"

    def token_request(self) -> dict[str, str]:
        body = {"kind": "professional", "rpps": self.rpps, "profession": self.profession}
        if self.specialty:
            body["specialty"] = self.specialty
        if self.structure:
            body["structure"] = self.structure
        return body


@dataclass
class Identities:
    patients: list[tuple[str, str]] = field(default_factory=list)  # (INS, OID)
    professionals: dict[str, Professional] = field(default_factory=dict)  # by actor id
    other_kinds: dict[str, int] = field(default_factory=dict)


def parse_identities(lines: Iterable[str]) -> Identities:
    """Read the generator's CSV. Unknown kinds are counted, not fatal."""
    reader = csv.DictReader(lines)
    header = tuple(reader.fieldnames or ())
    missing = [c for c in CSV_HEADER if c not in header]
    if missing:
        raise ValueError(f"identities CSV lacks column(s) {', '.join(missing)}; header {header}")
    out = Identities()
    for row in reader:
        kind = (row["kind"] or "").strip().lower()
        ident = (row["id"] or "").strip()
        if not ident:
            continue
        if kind in PATIENT_KINDS:
            out.patients.append((ident, (row["oid"] or "").strip()))
        elif kind in PROFESSIONAL_KINDS:
            pro = Professional(
                rpps=ident.removeprefix("rpps:"),
                oid=(row["oid"] or "").strip(),
                profession=(row["profession"] or "").strip() or "10",
                specialty=(row["specialty"] or "").strip() or None,
                structure=(row["structure"] or "").strip() or None,
            )
            out.professionals[pro.actor_id] = pro
        else:
            out.other_kinds[kind] = out.other_kinds.get(kind, 0) + 1
    return out


def read_identities(path: Path) -> Identities:
    with path.open(newline="", encoding="utf-8") as fh:
        return parse_identities(fh)


def bulk_generator_available(env: dict[str, str], cwd: Path) -> tuple[bool, str]:
    """Whether ``carnet demo --patients … --documents … --identities …`` exists in the code
    under test, and why not."""
    done = subprocess.run(
        [sys.executable, "-m", "carnet", "demo", "--help"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = done.stdout + done.stderr
    if done.returncode != 0:
        return False, "`carnet demo` is not a command of the code under test"
    lacking = [o for o in ("--patients", "--documents", "--identities") if o not in text]
    if lacking:
        return False, f"`carnet demo` has no {', '.join(lacking)} option"
    return True, "carnet demo"


def run_bulk_generator(
    env: dict[str, str], cwd: Path, patients: int, documents: int, identities: Path
) -> dict[str, object]:
    cmd = [
        sys.executable,
        "-m",
        "carnet",
        "demo",
        "--patients",
        str(patients),
        "--documents",
        str(documents),
        "--identities",
        str(identities),
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        out = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(cmd[2:])} failed ({done.returncode}):\n{out}")
    return {
        "command": "carnet " + " ".join(cmd[3:-1]) + " FILE",
        "seconds": round(seconds, 1),
        "documents_per_s": round(documents / seconds, 1) if seconds else None,
        "output_tail": (done.stdout + done.stderr)[-1500:],
    }


@dataclass(frozen=True)
class SearchedPatient:
    record_id: str
    ins: str
    oid: str
    professional: Professional
    documents: int


async def pick_searched(
    dsn: str, identities: Identities, sample: int, seed: int
) -> tuple[list[SearchedPatient], dict[str, int]]:
    """A sample of the CSV's patients with a professional authorised for each."""
    import asyncpg

    rng = random.Random(seed)
    pool = identities.patients
    chosen = rng.sample(pool, min(len(pool), sample * 2))  # some may lack a professional
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT r.record_id, r.ins_value, r.treating_physician, "
            "(SELECT array_agg(p.professional_id) FROM record_professionals p "
            " WHERE p.record_id = r.record_id) AS fed, "
            "(SELECT count(*) FROM documents d WHERE d.record_id = r.record_id) AS docs "
            "FROM records r WHERE r.ins_value = ANY($1::text[])",
            [ins for ins, _ in chosen],
        )
    finally:
        await conn.close()
    by_ins = {r["ins_value"]: r for r in rows}
    out: list[SearchedPatient] = []
    stats = {"sampled": len(chosen), "found": len(rows), "treating": 0, "fed": 0, "none": 0}
    for ins, oid in chosen:
        row = by_ins.get(ins)
        if row is None:
            continue
        pro = identities.professionals.get(row["treating_physician"] or "")
        if pro is not None:
            stats["treating"] += 1
        else:
            pro = next(
                (
                    identities.professionals[p]
                    for p in row["fed"] or []
                    if p in identities.professionals
                ),
                None,
            )
            stats["fed" if pro is not None else "none"] += 1
        if pro is None:
            continue
        out.append(SearchedPatient(row["record_id"], ins, oid, pro, int(row["docs"])))
        if len(out) >= sample:
            break
    return out, stats


def distinct_professionals(patients: Sequence[SearchedPatient]) -> list[Professional]:
    seen: dict[str, Professional] = {}
    for p in patients:
        seen.setdefault(p.professional.actor_id, p.professional)
    return list(seen.values())
