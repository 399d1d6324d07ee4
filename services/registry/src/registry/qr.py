"""QR codes as images (invites, volunteer cards). Pure."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.pure
import qrcode.image.svg


def qr_image(payload: str, *, fmt: str) -> tuple[bytes, str]:
    """The QR code of `payload` as PNG or SVG bytes, with its media type."""
    factory = qrcode.image.svg.SvgPathImage if fmt == "svg" else qrcode.image.pure.PyPNGImage
    image = qrcode.make(payload, image_factory=factory, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue(), "image/svg+xml" if fmt == "svg" else "image/png"
