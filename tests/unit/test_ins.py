"""INS: the NIR key, Corsica, OIDs (dmp.md §1-§2)."""

from __future__ import annotations

import pytest

from carnet.domain.errors import Rejected as UnprocessableEntity
from carnet.domain.ins import check_ins_value, make_nir, nir_key, parse_ins


def test_key_is_97_minus_mod_97() -> None:
    assert nir_key("1234567890123") == 97 - 1234567890123 % 97 == 11


@pytest.mark.parametrize("first13", ["2580375056123", "1921169123045", "2010513055089"])
def test_valid_nir(first13: str) -> None:
    assert check_ins_value(make_nir(first13)) == make_nir(first13)


def test_corsica_2a_reads_19_and_2b_reads_18() -> None:
    assert nir_key("175072A004017") == 97 - int("1750719004017") % 97
    assert nir_key("175072B004017") == 97 - int("1750718004017") % 97
    check_ins_value(make_nir("175072A004017"))
    check_ins_value(make_nir("175072B004017"))


def test_wrong_key_names_the_expected_key() -> None:
    with pytest.raises(UnprocessableEntity) as err:
        check_ins_value("123456789012345")
    assert "11" in err.value.message and "45" in err.value.message


@pytest.mark.parametrize(
    "value", ["12345", "1234567890123456", "9234567890123xx", "12345678901X345"]
)
def test_malformed(value: str) -> None:
    with pytest.raises(UnprocessableEntity):
        check_ins_value(value)


def test_social_security_oid_is_not_an_ins() -> None:
    with pytest.raises(UnprocessableEntity) as err:
        parse_ins(
            "urn:oid:1.2.250.1.213.1.4.13",
            make_nir("2580375056123"),
            allow_test=True,
            field="Patient.identifier[0]",
        )
    assert err.value.field == "Patient.identifier[0]"


def test_test_ins_only_where_allowed() -> None:
    value = make_nir("2580375056123")
    assert parse_ins("urn:oid:1.2.250.1.213.1.4.10", value, allow_test=True, field="x").is_test
    with pytest.raises(UnprocessableEntity):
        parse_ins("urn:oid:1.2.250.1.213.1.4.10", value, allow_test=False, field="x")
