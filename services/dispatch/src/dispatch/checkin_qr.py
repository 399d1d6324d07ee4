"""A post's check-in QR: tokens derived by HMAC from the post's secret, their verdicts, and the printable images (pure).

Two kinds of token, both `SW1.<post id hex>.<kind><counter>.<tag>`, the tag being the first 12 bytes of
HMAC-SHA256(post secret, "<post id>|<kind>|<counter>") in base64url:

- **rotating** (`r`): the counter is the 10-minute step since the epoch. Shown on a screen at the post (the SVG
  route refreshes itself); a check-in accepts the step of its time or the one before (and, when a phone's clock
  lags, a later step the server has already shown). Anything older is `stale_qr`: a photo of yesterday's QR.
- **shift** (`s`): the counter is the shift's start in minutes since the epoch. Printed on paper for posts with no
  screen; valid for that shift's check-in window only. A token naming another start (the post's shift was moved,
  or a sheet from another shift) is `stale_qr`.

A token of another post, or one whose tag does not verify, is refused. Stale tokens are flagged for review, not
refused: the volunteer may well be there, holding an old sheet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

import qrcode
import qrcode.image.pure
import qrcode.image.svg

ROTATION = timedelta(minutes=10)
VERSION = "SW1"
TAG_BYTES = 12
_TOKEN = re.compile(r"^SW1\.([0-9a-f]{32})\.([rs])(\d{1,12})\.([A-Za-z0-9_-]{16})$")

Mode = Literal["rotating", "shift"]


class Verdict(StrEnum):
    """What a presented token proves about being at a post."""

    FRESH = "fresh"  # this post's, current: accepted
    STALE = "stale"  # this post's, but old or of another shift: accepted and flagged `stale_qr`
    OTHER_POST = "other_post"  # refused
    INVALID = "invalid"  # not a token of ours (garbled, forged): refused


@dataclass(frozen=True)
class IssuedToken:
    """A token, the time it is accepted for, and when a screen should show the next one (None: printed, never)."""

    token: str
    mode: Mode
    valid_from: datetime
    valid_until: datetime
    refresh_at: datetime | None = None


def _tag(secret: str, post_hex: str, kind: str, counter: int) -> str:
    mac = hmac.new(secret.encode(), f"{post_hex}|{kind}|{counter}".encode(), hashlib.sha256).digest()[:TAG_BYTES]
    return base64.urlsafe_b64encode(mac).decode()


def _step(at: datetime) -> int:
    return int(at.timestamp() // ROTATION.total_seconds())


def _minute(at: datetime) -> int:
    return int(at.timestamp() // 60)


def _token(secret: str, post_hex: str, kind: str, counter: int) -> str:
    return f"{VERSION}.{post_hex}.{kind}{counter}.{_tag(secret, post_hex, kind, counter)}"


def rotating_token(*, post_id: str, secret: str, at: datetime) -> IssuedToken:
    """The rotating token of a post for the 10-minute step holding `at` (accepted in that step and the next)."""
    step = _step(at)
    start = datetime.fromtimestamp(step * ROTATION.total_seconds(), tz=at.tzinfo)
    return IssuedToken(_token(secret, _hex(post_id), "r", step), "rotating", start, start + 2 * ROTATION, start + ROTATION)


def shift_token(*, post_id: str, secret: str, shift_start: datetime, shift_end: datetime, opens_before: timedelta) -> IssuedToken:
    """The printable token of a post's shift, good from `opens_before` the start to the end."""
    return IssuedToken(_token(secret, _hex(post_id), "s", _minute(shift_start)), "shift", shift_start - opens_before, shift_end)


def verdict(token: str, *, post_id: str, secret: str, at: datetime, now: datetime, shift_start: datetime) -> Verdict:
    """Judge a token presented for `post_id` at check-in time `at` (`now`: the server's time)."""
    match = _TOKEN.match(token.strip())
    if match is None:
        return Verdict.INVALID
    post_hex, kind, counter, tag = match[1], match[2], int(match[3]), match[4]
    if post_hex != _hex(post_id):
        return Verdict.OTHER_POST
    if not hmac.compare_digest(tag, _tag(secret, post_hex, kind, counter)):
        return Verdict.INVALID
    if kind == "s":
        return Verdict.FRESH if counter == _minute(shift_start) else Verdict.STALE
    return Verdict.FRESH if _step(at) - 1 <= counter <= max(_step(at), _step(now)) else Verdict.STALE


def _hex(post_id: str) -> str:
    return post_id.replace("-", "").lower()


def _qr(data: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=15, border=4)
    code.add_data(data)
    code.make(fit=True)
    return code


def qr_svg(data: str) -> bytes:
    """`data` as a QR code in SVG (one path, 1.5 mm modules: about 7 cm wide on paper)."""
    out = io.BytesIO()
    _qr(data).make_image(image_factory=qrcode.image.svg.SvgPathImage).save(out)
    return out.getvalue()


def qr_png(data: str, *, box_size: int = 10) -> bytes:
    """`data` as a QR code in PNG, `box_size` pixels per module."""
    code = _qr(data)
    code.box_size = box_size
    out = io.BytesIO()
    code.make_image(image_factory=qrcode.image.pure.PyPNGImage).save(out)
    return out.getvalue()
