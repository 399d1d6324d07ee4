"""The org units of a person's scope as console pages show them: a picker in tree order, and a unit's name for its path."""

from __future__ import annotations

from gateway.console.session import ConsoleUser
from gateway.console.views import call, home_unit
from gateway.context import GatewayContext

ORG_PICKER_DEPTH = 2  # the scope's own unit and two levels below (county → towns and branches → stations)


async def org_choices(ctx: GatewayContext, user: ConsoleUser) -> list[dict]:
    """The org units of the person's scope to pick from, in tree order (siblings by name), each with its depth below the scope."""
    root = home_unit(user)
    if not root:
        return []
    answer = await call(ctx, user, "org-units", "GET", f"{root}/subtree", params=[("depth", str(ORG_PICKER_DEPTH))])
    return tree_order(answer.data) if answer.ok else []


def tree_order(units: list[dict]) -> list[dict]:
    """Units in the order of a tree drawn top-down (each after its parent, siblings by name), with `level` below the top one."""
    if not units:
        return []
    names = {u["id"]: u["name"] for u in units}
    top = min(u["depth"] for u in units)

    def line(u: dict) -> tuple[str, ...]:
        return tuple(names[i] + i for i in u["path"].strip("/").split("/") if i in names)

    return [{**u, "level": u["depth"] - top} for u in sorted(units, key=line)]


def unit_names(choices: list[dict]) -> dict[str, str]:
    """Each picked unit's name by its id."""
    return {u["id"]: u["name"] for u in choices}


def org_name(path: str | None, names: dict[str, str]) -> str:
    """An org path (unit ids from the county down) as the names of its units in the scope, '镇 / 站', leaving out the
    scope's own unit that every row lies in unless it is the row's; the path itself when no unit of it is known."""
    if not path:
        return ""
    known = [names[i] for i in path.strip("/").split("/") if i in names]
    return " / ".join(known[1:] or known) if known else path
