"""GB 11643 citizen identity numbers and mainland mobile phone numbers: pure validation, no I/O."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import NamedTuple

_CHECK = "10X98765432"
_PROVINCES = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43", "44", "45",
     "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82", "83"}
)
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
# Full-width digits and X, as Chinese input methods type them, read as their ASCII forms.
_FULL_WIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")
_PHONE = re.compile(r"1[3-9][0-9]{9}")


class InvalidNationalId(ValueError):
    """The text is not a valid GB 11643 identity number; the message says why (Chinese)."""


class InvalidPhone(ValueError):
    """The text is not a mainland mobile number."""


class NationalId(NamedTuple):
    """A validated identity number and what it encodes."""

    number: str
    region_code: str
    birth_date: date
    male: bool


def check_digit(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits.

    The standard weighs digit i (from 0) by 2^(17-i) mod 11 (7, 9, 10, 5, …). As 13 ≡ 2 (mod 11), the digits read
    as a base-13 number give the same sum halved: one `int()` instead of seventeen products.
    """
    return _CHECK[2 * int(first17, 13) % 11]


@lru_cache(maxsize=65_536)
def _birth_date(yyyymmdd: str) -> date:
    """The date of 8 digits (ValueError when there is none); remembered, as a roster repeats birthdays a lot."""
    return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))


def parse_national_id(text: str, *, today: date | None = None) -> NationalId:
    """Validate an 18-character identity number (shape, province, birth date, check digit)."""
    number = (text or "").strip()
    if not number.isascii():
        number = number.translate(_FULL_WIDTH)
    number = number.upper()
    if len(number) != 18:
        raise InvalidNationalId("身份证号码应为18位")
    if not _SHAPE.fullmatch(number):
        raise InvalidNationalId("身份证号码只能包含数字，最后一位可为X")
    if number[:2] not in _PROVINCES:
        raise InvalidNationalId("身份证号码的地区代码无效")
    try:
        born = _birth_date(number[6:14])
    except ValueError as exc:
        raise InvalidNationalId("身份证号码中的出生日期不存在") from exc
    today = today or date.today()
    if born > today or born.year < 1900:
        raise InvalidNationalId("身份证号码中的出生日期不合理")
    if check_digit(number[:17]) != number[17]:
        raise InvalidNationalId("身份证号码校验位错误")
    return NationalId(number, number[:6], born, number[16] in "13579")


def normalise_phone(text: str) -> str:
    """A mainland mobile number as 11 digits (spaces, dashes and a +86 prefix removed)."""
    if _PHONE.fullmatch(text or ""):
        return text
    digits = re.sub(r"[\s\-]", "", (text or "").translate(_FULL_WIDTH))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not _PHONE.fullmatch(digits):
        raise InvalidPhone("手机号码应为11位大陆手机号（以1开头）")
    return digits


def mask_national_id(number: str) -> str:
    """`330102198705142735` → `3****************5`: the first and the last character only.

    The middle stays hidden: with the region known (a county's codes are public), the sex and an age band, that still
    leaves ~10^5 numbers (birth dates in the band × 500 sequences ÷ 11 for the check). The old mask (first 3, last 4)
    showed the sequence and the check, so with a birth date it gave the number away.
    """
    if len(number) < 8:
        return "*" * len(number)
    return number[0] + "*" * (len(number) - 2) + number[-1]


def age_band(born: date, today: date) -> str:
    """The ten-year band of someone's age on `today`, e.g. "30-39": what staff see instead of the birth date."""
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    low = max(age, 0) // 10 * 10
    return f"{low}-{low + 9}"


def make_national_id(region_code: str, birth_date: date, sequence: int) -> str:
    """A well-formed identity number for `region_code`, `birth_date` and a 3-digit sequence (demo data, tests)."""
    first17 = f"{region_code}{birth_date:%Y%m%d}{sequence % 1000:03d}"
    return first17 + check_digit(first17)
