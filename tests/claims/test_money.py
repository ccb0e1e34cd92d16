"""Money: currency codes, strict amount parsing, rounding to the minor unit."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claims.money import (
    CURRENCIES,
    MAX_AMOUNT,
    MoneyError,
    format_money,
    is_on_minor_unit,
    minor_unit,
    parse_amount,
    parse_currency,
    quantize,
)


def test_currency_table_has_the_common_codes_with_their_minor_units() -> None:
    expected = {"CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "TWD": 2, "JPY": 0, "KRW": 0}
    expected |= {"BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3}
    for code, digits in expected.items():
        assert CURRENCIES[code] == digits, code


@pytest.mark.parametrize("code", ["XAU", "XAG", "XPT", "XPD", "XTS", "XXX", "XDR", "BOV", "CLF", "USN"])
def test_currency_table_has_no_funds_metals_or_testing_codes(code: str) -> None:
    assert code not in CURRENCIES
    with pytest.raises(MoneyError, match="unknown currency"):
        parse_currency(code)


def test_currency_table_is_well_formed() -> None:
    assert len(CURRENCIES) > 150
    for code, digits in CURRENCIES.items():
        assert len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()
        assert digits in (0, 2, 3)
    with pytest.raises(TypeError):
        CURRENCIES["ABC"] = 2  # type: ignore[index]


@pytest.mark.parametrize(("code", "expected"), [("CNY", "CNY"), ("jpy", "JPY"), (" usd ", "USD")])
def test_parse_currency_accepts_known_codes(code: str, expected: str) -> None:
    assert parse_currency(code) == expected


@pytest.mark.parametrize("code", ["XYZ", "", "CN", "CNYY", "C N", "RMB", "ＣＮＹ", "ﬀf"])
def test_parse_currency_refuses_unknown_codes(code: str) -> None:
    with pytest.raises(MoneyError, match=r"unknown currency .* \(ISO 4217 code expected\)"):
        parse_currency(code)


def test_parse_currency_message() -> None:
    with pytest.raises(MoneyError) as exc:
        parse_currency("XYZ")
    assert str(exc.value) == "unknown currency 'XYZ' (ISO 4217 code expected)"
    assert isinstance(exc.value, ValueError)


def test_parse_currency_refuses_non_strings() -> None:
    with pytest.raises(MoneyError):
        parse_currency(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("199.99", "CNY", "199.99"),
        ("200", "CNY", "200.00"),
        ("0.5", "CNY", "0.50"),
        ("0.01", "CNY", "0.01"),
        (" 12.3 ", "USD", "12.30"),
        ("007", "CNY", "7.00"),
        ("1000000000000", "CNY", "1000000000000.00"),
        ("1500", "JPY", "1500"),
        ("1", "KRW", "1"),
        ("1.5", "BHD", "1.500"),
        ("0.001", "KWD", "0.001"),
    ],
)
def test_parse_amount_accepts_plain_decimals(text: str, currency: str, expected: str) -> None:
    amount = parse_amount(text, currency)
    assert isinstance(amount, Decimal)
    assert amount == Decimal(expected)
    assert str(amount) == expected  # quantized to the minor unit, so the exponent is right too


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("", "CNY", "empty"),
        ("   ", "CNY", "empty"),
        ("NaN", "CNY", "must be a number"),
        ("nan", "CNY", "must be a number"),
        ("Infinity", "CNY", "must be a number"),
        ("-inf", "CNY", "must be a number"),
        ("1e3", "CNY", "exponent"),
        ("1E-2", "CNY", "exponent"),
        ("2.5e1", "CNY", "exponent"),
        ("-5", "CNY", "must not be negative"),
        ("-0.01", "CNY", "must not be negative"),
        ("+5", "CNY", "without a sign"),
        ("1,000", "CNY", "thousands separators"),
        ("1,000.50", "CNY", "thousands separators"),
        ("1_000", "CNY", "thousands separators"),
        ("1 000", "CNY", "thousands separators"),
        ("1'000", "CNY", "thousands separators"),
        ("1.234", "CNY", "at most 2 decimal places"),
        ("1.000", "CNY", "at most 2 decimal places"),
        ("10.5", "JPY", "whole numbers"),
        ("10.0", "JPY", "whole numbers"),
        ("1.2345", "BHD", "at most 3 decimal places"),
        ("0", "CNY", "must be greater than zero"),
        ("0.00", "CNY", "must be greater than zero"),
        ("1000000000000.01", "CNY", "too large"),
        ("99999999999999999999", "CNY", "too large"),
        ("1" * 100, "CNY", "too long"),
        ("12,5", "EUR", "thousands separators"),  # a decimal comma is ambiguous: refused, not guessed
        (".5", "CNY", "plain decimal number"),
        ("5.", "CNY", "plain decimal number"),
        ("1.2.3", "CNY", "plain decimal number"),
        ("¥100", "CNY", "plain decimal number"),
        ("100 CNY", "CNY", "plain decimal number"),
        ("0x10", "CNY", "plain decimal number"),
        ("١٢", "CNY", "plain decimal number"),  # Arabic-Indic digits: Decimal() would accept them
        ("１２", "CNY", "plain decimal number"),  # full-width digits
    ],
)
def test_parse_amount_refuses(text: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        parse_amount(text, currency)


def test_parse_amount_refuses_unknown_currency_and_non_text() -> None:
    with pytest.raises(MoneyError, match="unknown currency 'XYZ'"):
        parse_amount("10", "XYZ")
    with pytest.raises(MoneyError, match="as text"):
        parse_amount(10.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="as text"):
        parse_amount(Decimal("10"), "CNY")  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**15), st.sampled_from(["CNY", "JPY", "BHD", "USD"]))
def test_parse_amount_round_trips_every_amount_in_minor_units(units: int, currency: str) -> None:
    digits = CURRENCIES[currency]
    whole, frac = divmod(units, 10**digits)
    text = f"{whole}.{frac:0{digits}d}" if digits else str(whole)
    expected = Decimal(units).scaleb(-digits)
    if expected > MAX_AMOUNT:
        with pytest.raises(MoneyError, match="too large"):
            parse_amount(text, currency)
    else:
        amount = parse_amount(text, currency)
        assert amount == expected
        assert amount.as_tuple().exponent == -digits
        assert str(amount) == text


def test_minor_unit() -> None:
    assert minor_unit("CNY") == Decimal("0.01")
    assert minor_unit("JPY") == Decimal("1")
    assert minor_unit("BHD") == Decimal("0.001")


def test_quantize() -> None:
    assert str(quantize(Decimal("1.005"), "CNY")) == "1.01"  # half up
    assert str(quantize(Decimal("1.004"), "CNY")) == "1.00"
    assert str(quantize(Decimal("1.005"), "CNY", ROUND_DOWN)) == "1.00"
    assert str(quantize(Decimal("10.5"), "JPY")) == "11"
    assert str(quantize(Decimal("1.0005"), "BHD")) == "1.001"
    assert str(quantize(Decimal("2"), "KWD")) == "2.000"
    with pytest.raises(MoneyError, match="unknown currency"):
        quantize(Decimal("1"), "XYZ")
    with pytest.raises(MoneyError, match="Decimal"):
        quantize(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="finite"):
        quantize(Decimal("NaN"), "CNY")


def test_is_on_minor_unit_and_format_money() -> None:
    assert is_on_minor_unit(Decimal("199.99"), "CNY")
    assert is_on_minor_unit(Decimal("200"), "CNY")
    assert not is_on_minor_unit(Decimal("1.005"), "CNY")
    assert not is_on_minor_unit(Decimal("10.5"), "JPY")
    assert not is_on_minor_unit(Decimal("Infinity"), "CNY")
    assert format_money(Decimal("150"), "CNY") == "150.00 CNY"
    assert format_money(Decimal("1500"), "jpy") == "1500 JPY"
