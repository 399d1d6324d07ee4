"""Strips what could identify an informant from text that leaves for the police. Pure, no I/O.

Numbers in a tip are often the evidence (a fraudster's phone, a plate), so only what the writer says
about themselves is removed: a self-introduction, their own contact number, and ID numbers.
"""

from __future__ import annotations

import re

_NATIONAL_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
_SELF_NAME = re.compile(r"(我叫|我是|本人叫|本人是|我的名字是|举报人[:：]?)\s*[\u4e00-\u9fff]{2,3}")
_SELF_PHONE = re.compile(r"(我的电话|我的手机号?|联系电话|联系方式|本人电话|请回电|打我电话)[^，。,.;；！!]{0,24}")


def redact_informant(text: str) -> str:
    """The text with ID numbers, the writer's own phone and self-introduction replaced by ***."""
    text = _SELF_PHONE.sub(lambda m: m.group(1) + "***", text)
    text = _SELF_NAME.sub(lambda m: m.group(1) + "***", text)
    return _NATIONAL_ID.sub("***", text)
