"""Made-up people for the registry tests: valid identity numbers and phones, unique in a test session."""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta

from registry.national_id import make_national_id

_sequence = itertools.count(1)


def new_person(*, name: str | None = None) -> dict:
    """A made-up person with a valid identity number and a mobile phone, unique in the test session."""
    n = next(_sequence)
    born = date(1960, 1, 1) + timedelta(days=random.randint(0, 16000))
    region = random.choice(["330102", "330106", "330110", "330122"])
    return {
        "real_name": name or random.choice(["张", "王", "李", "赵", "陈"]) + random.choice(["伟", "芳", "秀英", "建国", "丽"]),
        "national_id": make_national_id(region, born, n),
        "phone": f"136{n:08d}",
    }
