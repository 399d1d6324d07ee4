"""The volunteers table as typed column constants, and the one query more than one module sends (volunteer numbers)."""

from __future__ import annotations

# The columns a new volunteer row is written with, in this order: the registration statement's placeholders and the
# roster's COPY records follow it.
INSERT_COLUMNS: tuple[str, ...] = (
    "id", "real_name", "display_name", "national_id_enc", "national_id_index", "national_id_masked",
    "phone_enc", "phone_index", "phone_masked", "birth_date", "gender", "org_unit_id", "org_path", "grid_id",
    "recruited_by", "lat", "lon", "core", "recruitment_mode", "service_types", "teams", "skills",
    "certificates", "availability", "status", "status_reason", "joined_on",
)

# The columns of a volunteer's public view (`volunteers.public_view` masks and shapes them): no ciphertext, no index.
PUBLIC_COLUMNS: tuple[str, ...] = (
    "id", "real_name", "display_name", "national_id_masked", "phone_masked", "birth_date", "gender", "org_unit_id",
    "org_path", "grid_id", "recruited_by", "lat", "lon", "core", "recruitment_mode", "service_types", "teams", "skills",
    "certificates", "availability", "status", "status_reason", "star", "training_compliant", "training_flagged_on",
    "specialised_eligible", "joined_on", "version", "updated_at", "volunteer_number",
)


def select_list(columns: tuple[str, ...], *, alias: str = "") -> str:
    """The SQL select list of `columns`, each prefixed with `alias.` when one is given."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{c}" for c in columns)


PUBLIC_SELECT = select_list(PUBLIC_COLUMNS)
PUBLIC_SELECT_OF_V = select_list(PUBLIC_COLUMNS, alias="v")  # for statements that name the table `volunteers AS v`

NEXT_NUMBERS_SQL = "SELECT nextval('volunteer_number_seq') FROM generate_series(1, $1)"  # asyncpg: $1 numbers to take (registration, roster)
