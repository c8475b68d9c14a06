"""One form for a professional (issue 7): RPPS and IdNatPS are the same person, in ASCII digits
with a Luhn key, normalised once where they enter (tokens, consents, the médecin traitant)."""

from __future__ import annotations

import pytest

from carnet.domain.errors import Rejected
from carnet.domain.professionals import check_idnatps, professional_id, same_professional_id

RPPS = "10000000009"  # Luhn key 9
IDNATPS = "8" + RPPS


def test_bare_rpps_and_idnatps_are_one_form() -> None:
    assert check_idnatps(RPPS, field="f") == IDNATPS
    assert check_idnatps(IDNATPS, field="f") == IDNATPS
    assert check_idnatps(f" {RPPS}\n", field="f") == IDNATPS
    assert professional_id(RPPS, field="f") == professional_id(f"rpps:{IDNATPS}", field="f")
    assert same_professional_id(f"rpps:{RPPS}") == f"rpps:{IDNATPS}"
    assert same_professional_id("system:ehr-1") == "system:ehr-1"  # not a professional: as is


@pytest.mark.parametrize(
    "value",
    [
        "1000000000\uff19",  # a full-width nine
        "8" + "\u0661" + RPPS[1:],  # an Arabic-Indic one
        "10000000008",  # wrong Luhn key
        "910000000009",  # 12 digits not starting with 8
        "",
        "1000000000 9",
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(Rejected) as err:
        check_idnatps(value, field="consent.actor")
    assert err.value.field == "consent.actor"
