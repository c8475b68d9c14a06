"""one identity per person: the INS value is unique whatever its OID; professionals as IdNatPS

Revision ID: 0007
Revises: 0006

- ``records``: the unique key was (ins_oid, ins_value), so the same person's INS under INS-NIR
  and INS-NIR de test opened two records. It is now the INS value alone (``uq_records_ins_value``,
  also the index every lookup by INS uses). A destroyed record's tombstone that shares its value
  with another row is dropped first (the person may open a record again, as the core does);
  two live records of one INS value stop the migration with their ids: an operator merges them.
- ``objections``: an index on the INS value (an objection is the person's, whatever the OID).
- professionals are kept in one form, the IdNatPS (``8`` + RPPS, ``domain/professionals.py``):
  a médecin traitant, an opener, an author or a consent stored with the bare 11-digit RPPS
  number is rewritten to it, so that it keeps matching the tokens (normalised too). Traces are
  not rewritten: they are hash-chained and append-only.
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BARE = re.compile(r"[0-9]{11}", re.ASCII)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _idnatps(value: str) -> str | None:
    """The IdNatPS of a bare RPPS number; None for anything else (kept as written)."""
    if _BARE.fullmatch(value) and _luhn_ok(value):
        return "8" + value
    return None


def _one_record_per_ins(bind: sa.engine.Connection) -> None:
    rows = bind.execute(
        sa.text(
            "SELECT record_id, ins_value, state FROM records WHERE ins_value IN "
            "(SELECT ins_value FROM records GROUP BY ins_value HAVING COUNT(*) > 1)"
        )
    ).all()
    by_value: dict[str, list[tuple[str, str]]] = {}
    for record_id, value, state in rows:
        by_value.setdefault(value, []).append((record_id, state))
    live_twice: list[str] = []
    for value, found in by_value.items():
        live = [rid for rid, state in found if state != "destroyed"]
        tombstones = [rid for rid, state in found if state == "destroyed"]
        keep = tombstones[:1] if not live else []
        for rid in tombstones:
            if rid not in keep:
                bind.execute(
                    sa.text("DELETE FROM records WHERE record_id = :r AND state = 'destroyed'"),
                    {"r": rid},
                )
        if len(live) > 1:
            live_twice.append(f"INS {value}: records {', '.join(sorted(live))}")
    if live_twice:
        raise RuntimeError(
            "one person has several records (the same INS value under different OIDs); "
            "merge or destroy all but one, then migrate again: " + "; ".join(live_twice)
        )


def _professional_ids(bind: sa.engine.Connection) -> None:
    """Bare RPPS numbers stored as actor ids (``rpps:<11 digits>``) or consent values become
    IdNatPS."""
    for name, column in (
        ("records", "treating_physician"),
        ("records", "consent_by"),
        ("documents", "author_id"),
        ("record_professionals", "professional_id"),
    ):
        t = sa.table(name, sa.column(column))
        c = t.c[column]
        values = bind.execute(sa.select(c).distinct().where(c.like("rpps:%"))).scalars()
        for value in list(values):
            normal = _idnatps(value.removeprefix("rpps:"))
            if normal is None:
                continue
            new = "rpps:" + normal
            if name == "record_professionals":
                # the same relation already stored under the IdNatPS: the bare one goes
                bind.execute(
                    sa.text(
                        "DELETE FROM record_professionals WHERE professional_id = :old AND "
                        "EXISTS (SELECT 1 FROM record_professionals n WHERE "
                        "n.record_id = record_professionals.record_id AND "
                        "n.relation = record_professionals.relation AND n.professional_id = :new)"
                    ),
                    {"old": value, "new": new},
                )
            bind.execute(sa.update(t).where(c == value).values({column: new}))
    values = bind.execute(
        sa.text("SELECT DISTINCT actor_value FROM consents WHERE actor_kind = 'professional'")
    ).scalars()
    for value in list(values):
        normal = _idnatps(value)
        if normal is not None:
            bind.execute(
                sa.text(
                    "UPDATE consents SET actor_value = :new "
                    "WHERE actor_kind = 'professional' AND actor_value = :old"
                ),
                {"new": normal, "old": value},
            )


def upgrade() -> None:
    bind = op.get_bind()
    _one_record_per_ins(bind)
    _professional_ids(bind)
    with op.batch_alter_table("records") as batch:
        batch.drop_constraint("uq_records_ins", type_="unique")
        batch.create_unique_constraint("uq_records_ins_value", ["ins_value"])
    op.create_index("ix_objections_value", "objections", ["ins_value"])


def downgrade() -> None:
    op.drop_index("ix_objections_value", table_name="objections")
    with op.batch_alter_table("records") as batch:
        batch.drop_constraint("uq_records_ins_value", type_="unique")
        batch.create_unique_constraint("uq_records_ins", ["ins_oid", "ins_value"])
