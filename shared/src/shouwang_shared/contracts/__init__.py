"""Integration-event contracts: versioned payload models, one module per producing service.

Each model is the `data` of an envelope whose `type` is the model's `TYPE` and which travels on the
model's `TOPIC`. Consumers ignore unknown fields (extra="ignore"); a breaking change is a new
`type` version. `python -m shouwang_shared.contracts.asyncapi` writes the AsyncAPI document.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class EventPayload(BaseModel):
    """Base of every event payload: its type, topic and source are class attributes."""

    model_config = ConfigDict(extra="ignore")

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]
    SOURCE: ClassVar[str]


def registry_of_payloads() -> dict[str, type[EventPayload]]:
    """Every payload model by event type."""
    from shouwang_shared.contracts import dispatch, intel, police, registry, rewards

    models: dict[str, type[EventPayload]] = {}
    for module in (registry, dispatch, intel, police, rewards):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, EventPayload) and value is not EventPayload and hasattr(value, "TYPE"):
                models[value.TYPE] = value
    return models
