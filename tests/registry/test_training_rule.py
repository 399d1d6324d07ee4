"""The yearly training rule as a pure function."""

from datetime import date, timedelta

from registry.training_rule import assess_training, required_trainings, trainings_in_window

TODAY = date(2026, 11, 1)
LONG_AGO = date(2020, 1, 1)


def test_core_volunteers_need_four_a_year_and_ordinary_ones_one():
    assert required_trainings(core=True, joined_on=LONG_AGO, as_of=TODAY) == 4
    assert required_trainings(core=False, joined_on=LONG_AGO, as_of=TODAY) == 1


def test_newcomers_need_a_pro_rata_share():
    assert required_trainings(core=True, joined_on=TODAY - timedelta(days=100), as_of=TODAY) == 1
    assert required_trainings(core=True, joined_on=TODAY - timedelta(days=200), as_of=TODAY) == 2
    assert required_trainings(core=False, joined_on=TODAY - timedelta(days=300), as_of=TODAY) == 0
    assert required_trainings(core=True, joined_on=TODAY, as_of=TODAY) == 0


def test_only_the_trailing_year_counts():
    days = [TODAY - timedelta(days=d) for d in (1, 100, 364, 365, 400)]
    assert trainings_in_window(days, as_of=TODAY) == 3


def test_a_core_volunteer_with_three_trainings_is_behind_and_flagged_from_today():
    standing = assess_training(
        core=True, joined_on=LONG_AGO, attended_on=[TODAY - timedelta(days=d) for d in (10, 50, 90)],
        flagged_since=None, as_of=TODAY, notice_days=30,
    )
    assert standing.behind and standing.required == 4 and standing.attended == 3
    assert standing.flagged_since == TODAY
    assert standing.specialised_eligible  # still inside the notice period


def test_after_the_notice_period_a_flagged_volunteer_loses_specialised_eligibility():
    args = dict(core=False, joined_on=LONG_AGO, attended_on=[], as_of=TODAY, notice_days=30)
    assert assess_training(**args, flagged_since=TODAY - timedelta(days=29)).specialised_eligible
    late = assess_training(**args, flagged_since=TODAY - timedelta(days=30))
    assert late.behind and not late.specialised_eligible and late.flagged_since == TODAY - timedelta(days=30)


def test_catching_up_clears_the_flag_and_restores_eligibility():
    standing = assess_training(
        core=False, joined_on=LONG_AGO, attended_on=[TODAY], flagged_since=TODAY - timedelta(days=90), as_of=TODAY, notice_days=30,
    )
    assert standing.compliant and standing.flagged_since is None and standing.specialised_eligible
