"""Field types the services' response models share (docs/conventions.md, "Response models")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema

# A time as the services always answered it (`isoformat()`: `+00:00`, not pydantic's `Z`), so typed answers stay byte-compatible.
Timestamp = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
