"""GB 11643 identity numbers and mobile phones: pure validation."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.national_id import (
    InvalidNationalId,
    InvalidPhone,
    age_band,
    check_digit,
    make_national_id,
    mask_national_id,
    normalise_phone,
    parse_national_id,
)


def test_a_known_valid_number_parses_with_birth_date_and_gender():
    # 11010519491231002X is the standard's own worked example.
    parsed = parse_national_id("11010519491231002x")
    assert parsed.number == "11010519491231002X"
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.male is False
    assert parsed.region_code == "110105"


def test_check_digit_follows_iso_7064_mod_11_2():
    assert check_digit("11010519491231002") == "X"
    number = make_national_id("330102", date(1990, 1, 1), 123)
    assert parse_national_id(number).birth_date == date(1990, 1, 1)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_digit_is_the_standards_weighted_sum(first17):
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643's table, written out
    assert check_digit(first17) == "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "18位"),
        ("3301021990010112", "18位"),
        ("33010219900101123Y", "只能包含数字"),
        ("99010219900101123X", "地区代码"),
        ("330102199002301234", "出生日期不存在"),  # 30 February
        ("330102199013011234", "出生日期不存在"),  # month 13
        ("330102289901011234", "出生日期不合理"),  # born in 2899
    ],
)
def test_malformed_numbers_and_impossible_dates_are_refused_with_a_reason(text, reason):
    with pytest.raises(InvalidNationalId, match=reason):
        parse_national_id(text)


def test_a_wrong_check_digit_is_refused():
    good = make_national_id("330102", date(1985, 6, 15), 7)
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(InvalidNationalId, match="校验位"):
        parse_national_id(wrong)


def test_future_birth_date_is_refused():
    number = make_national_id("330102", date(2030, 1, 1), 1)
    with pytest.raises(InvalidNationalId, match="不合理"):
        parse_national_id(number, today=date(2026, 1, 1))


@pytest.mark.parametrize("text, expected", [("13812345678", "13812345678"), ("+86 138-1234-5678", "13812345678"), ("0086 19912345678", "19912345678")])
def test_mobile_numbers_are_normalised(text, expected):
    assert normalise_phone(text) == expected


@pytest.mark.parametrize("text", ["", "12812345678", "1381234567", "0571-88888888", "138123456789", "abc"])
def test_non_mobile_numbers_are_refused(text):
    with pytest.raises(InvalidPhone):
        normalise_phone(text)


def test_full_width_digits_read_as_ascii_so_one_person_has_one_index():
    number = make_national_id("330102", date(1990, 1, 1), 123)
    full_width = number.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    assert parse_national_id(full_width).number == number
    assert normalise_phone("１３８１２３４５６７８") == "13812345678"


def test_digits_of_other_scripts_are_refused():
    with pytest.raises(InvalidNationalId, match="只能包含数字"):
        parse_national_id("٣٣٠١٠٢١٩٩٠٠١٠١١٢٣٤")
    with pytest.raises(InvalidPhone):
        normalise_phone("١٣٨١٢٣٤٥٦٧٨")


def test_the_mask_keeps_only_the_first_and_last_character():
    assert mask_national_id("33010619870514273X") == "3" + "*" * 16 + "X"
    assert mask_national_id("1234567") == "*******"


def test_the_age_band_turns_on_the_birthday_itself():
    assert age_band(date(1987, 5, 14), date(2027, 5, 13)) == "30-39"
    assert age_band(date(1987, 5, 14), date(2027, 5, 14)) == "40-49"
    assert age_band(date(2008, 2, 29), date(2026, 2, 28)) == "10-19"
    assert age_band(date(2008, 2, 29), date(2028, 2, 29)) == "20-29"
