"""Money: ISO 4217 currencies, parsing customer-entered amounts, rounding to a currency's minor unit.

Amounts are ``decimal.Decimal`` everywhere, never ``float``: a declared value of 0.1 + 0.2 must be
0.3, and an insurer must be able to reproduce every payout to the last minor unit. Amounts arrive as
text (a form field, a JSON string) and are parsed strictly: an amount the customer did not clearly
mean ("1,000" is a thousand in one locale and one in another; "1e3"; more decimals than the currency
has) is refused with a message saying why, rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from types import MappingProxyType
from typing import overload

# Active ISO 4217 currency codes -> number of minor-unit digits (2 for cents, 0 for currencies
# without a minor unit such as JPY and KRW, 3 for the dinars of Bahrain, Iraq, Jordan, Kuwait,
# Libya, Oman and Tunisia). Left out on purpose: fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI,
# UYW), precious metals (XAU, XAG, XPD, XPT), bond-market and accounting units (XBA-XBD, XDR, XSU,
# XUA), the testing and "no currency" codes (XTS, XXX), and currencies withdrawn before this
# policy's time: ANG (replaced by XCG in 2025), BGN (Bulgaria adopted the euro in 2026), HRK,
# SLL, ZWL (replaced by ZWG in 2024) and older ones. Nobody insures a parcel in troy ounces of gold.
CURRENCIES: Mapping[str, int] = MappingProxyType(
    {
        "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
        "BAM": 2, "BBD": 2, "BDT": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2,
        "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
        "CAD": 2, "CDF": 2, "CHF": 2, "CLP": 0, "CNY": 2, "COP": 2, "CRC": 2, "CUC": 2, "CUP": 2,
        "CVE": 2, "CZK": 2,
        "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2,
        "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2,
        "FJD": 2, "FKP": 2,
        "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2,
        "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2,
        "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0,
        "JMD": 2, "JOD": 3, "JPY": 0,
        "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2,
        "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
        "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
        "MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2,
        "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2,
        "OMR": 3,
        "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0,
        "QAR": 2,
        "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0,
        "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2,
        "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2,
        "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2,
        "UAH": 2, "UGX": 0, "USD": 2, "UYU": 2, "UZS": 2,
        "VED": 2, "VES": 2, "VND": 0, "VUV": 0,
        "WST": 2,
        "XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0,
        "YER": 2,
        "ZAR": 2, "ZMW": 2, "ZWG": 2,
    }
)  # fmt: skip

# No parcel is insured for more than this; a bigger number is a typo or an attack, and refusing it
# keeps every amount well inside the arithmetic context below.
MAX_AMOUNT = Decimal(10) ** 12

# Longest amount text worth looking at ("1000000000000.000" is 17 characters); longer input is
# refused before any parsing so a megabyte of digits costs nothing.
_MAX_AMOUNT_TEXT = 64

_PLAIN_DECIMAL = re.compile(r"(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?", re.ASCII)
_NOT_A_NUMBER = re.compile(r"[+-]?(nan|snan|inf|infinity)", re.ASCII | re.IGNORECASE)
_EXPONENT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)e[+-]?[0-9]+", re.ASCII | re.IGNORECASE)
_SEPARATED = re.compile(r"[0-9]+([,_' \u00a0\u202f][0-9]+)+(\.[0-9]+)?", re.ASCII)

# Money arithmetic runs in its own context: enough precision that no intermediate result is ever
# rounded before the one deliberate quantize, and traps so that an invalid operation raises instead of
# quietly producing NaN. Callers' (possibly changed) thread-local contexts do not leak in.
MONEY_CONTEXT = Context(prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])


def money_context() -> AbstractContextManager[Context]:
    """A context manager running Decimal arithmetic in :data:`MONEY_CONTEXT`."""
    return localcontext(MONEY_CONTEXT)


class MoneyError(ValueError):
    """An amount or currency the customer (or a client) sent that cannot be accepted.

    The message is written for the person who typed the value; the API returns it with HTTP 422.
    """


def _shown(text: object, limit: int = 24) -> str:
    """The offending input as quoted in an error message, cut short so huge input is not echoed."""
    s = str(text)
    return repr(s if len(s) <= limit else s[:limit] + "...")


def parse_currency(code: str) -> str:
    """The ISO 4217 code for `code`, upper case.

    Case is forgiven ("cny" is unambiguous) but nothing else: the code must be one of the active codes
    in :data:`CURRENCIES`, so funds, metals and testing codes are refused too.
    """
    if isinstance(code, str) and code.isascii():
        upper = code.strip().upper()
        if upper in CURRENCIES:
            return upper
    raise MoneyError(f"unknown currency {_shown(code)} (ISO 4217 code expected)")


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency`: Decimal('0.01') for CNY, Decimal('1') for JPY."""
    return Decimal(1).scaleb(-CURRENCIES[parse_currency(currency)])


def parse_amount(text: str, currency: str) -> Decimal:
    """A positive amount of `currency` from plain decimal text such as "199.99", "200" or "0.5".

    Strict on purpose, because a misread amount is a wrong payout: no sign, no exponent, no thousands
    separators (their meaning depends on the locale), no NaN or infinity, no more decimal places than
    the currency has ("10.5" yen does not exist), nothing at or below zero and nothing above
    :data:`MAX_AMOUNT`. Surrounding whitespace is ignored. The result is quantized to the currency's
    minor unit, so "200" CNY is Decimal('200.00').

    Raises MoneyError, whose message says what is wrong.
    """
    currency = parse_currency(currency)
    if not isinstance(text, str):
        raise MoneyError(f"amount must be given as text, got {type(text).__name__}")
    if len(text) > _MAX_AMOUNT_TEXT:
        raise MoneyError(f"amount is too long ({len(text)} characters)")
    s = text.strip()
    if not s:
        raise MoneyError("amount is empty")
    match = _PLAIN_DECIMAL.fullmatch(s)
    if match is None:
        if _NOT_A_NUMBER.fullmatch(s):
            raise MoneyError(f"amount must be a number, got {_shown(s)}")
        if s.startswith("-"):
            raise MoneyError(f"amount must not be negative, got {_shown(s)}")
        if s.startswith("+"):
            raise MoneyError(f"amount must be written without a sign, got {_shown(s)}")
        if _EXPONENT.fullmatch(s):
            raise MoneyError(f"amount must be written without an exponent, got {_shown(s)}")
        if _SEPARATED.fullmatch(s):
            raise MoneyError(
                f"amount must not contain thousands separators or a decimal comma (write '1000.50'), "
                f"got {_shown(s)}"
            )
        raise MoneyError(f"amount must be a plain decimal number such as '199.99', got {_shown(s)}")
    digits = CURRENCIES[currency]
    frac = match.group("frac") or ""
    if len(frac) > digits:
        if digits == 0:
            raise MoneyError(f"{currency} amounts are whole numbers (no decimal places), got {_shown(s)}")
        raise MoneyError(f"{currency} amounts have at most {digits} decimal places, got {_shown(s)}")
    with money_context():
        amount = Decimal(s)
        if amount == 0:
            raise MoneyError(f"amount must be greater than zero, got {_shown(s)}")
        if amount > MAX_AMOUNT:
            raise MoneyError(f"amount is too large (at most {MAX_AMOUNT} {currency}), got {_shown(s)}")
        return quantize(amount, currency)


def quantize(amount: Decimal, currency: str, rounding: str = ROUND_HALF_UP) -> Decimal:
    """`amount` rounded to the minor unit of `currency` (cents for CNY, whole yen for JPY).

    ROUND_HALF_UP by default because it is what customers and adjusters do by hand, so a payout they
    recompute on paper matches ours. Raises MoneyError for an unknown currency or a non-finite or
    non-Decimal amount (a float has already lost the exact value, so it is refused, not converted).
    """
    unit = minor_unit(currency)
    if not isinstance(amount, Decimal):
        raise MoneyError(f"amount must be a Decimal, got {type(amount).__name__}")
    if not amount.is_finite():
        raise MoneyError(f"amount must be finite, got {amount}")
    with money_context():
        return amount.quantize(unit, rounding=rounding)


def is_on_minor_unit(amount: Decimal, currency: str) -> bool:
    """Whether `amount` is a whole number of the currency's minor unit (199.99 CNY yes, 1.005 no)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        return False
    with money_context():
        return amount % minor_unit(currency) == 0


def format_money(amount: Decimal, currency: str) -> str:
    """`amount` as shown to a customer: "150.00 CNY", "1500 JPY" (no grouping, no float)."""
    currency = parse_currency(currency)
    return f"{quantize(amount, currency)} {currency}"


@overload
def amount_text(amount: Decimal, currency: str) -> str: ...
@overload
def amount_text(amount: None, currency: str) -> None: ...
@overload
def amount_text(amount: Decimal | None, currency: str) -> str | None: ...
def amount_text(amount: Decimal | None, currency: str) -> str | None:
    """An amount as the API writes it in JSON: exact decimal text at the currency's minor unit
    ("150.00" for CNY, "1500" for JPY), never a float; None stays None."""
    if amount is None:
        return None
    return str(quantize(amount, currency))


_TOML_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
_TOML_SIGNED_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)


def toml_decimal(
    name: str,
    value: object,
    *,
    error: type[Exception],
    what: str = "a decimal number",
    example: str = "0.9",
    signed: bool = True,
) -> Decimal:
    """A Decimal from a TOML string ("0.9") or integer (2000), for the policy and deadline files.

    TOML floats are refused: tomllib has already turned them into binary floats, and a knob that
    sets money must mean exactly what is written. `error` is the caller's configuration error, so a
    bad file is reported in the family of the file it is in."""
    if isinstance(value, float):
        raise error(
            f'{name} = {value!r} is a TOML float; write it as a string, {name} = "{value!r}", '
            "so it is read exactly"
        )
    if isinstance(value, bool):
        raise error(f"{name} must be {what}, got {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    pattern = _TOML_SIGNED_DECIMAL if signed else _TOML_DECIMAL
    if isinstance(value, str) and pattern.fullmatch(value.strip()):
        return Decimal(value.strip())
    raise error(f'{name} must be {what} written as a string such as "{example}", got {value!r}')
