"""The volunteers table as typed column constants, and the named queries registry's modules share over it."""

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

# Named queries (SQLAlchemy `text()` bind style unless said otherwise).
VOLUNTEER_BY_ID = f"SELECT {PUBLIC_SELECT} FROM volunteers WHERE id = CAST(:id AS uuid)"
VOLUNTEER_BY_ID_FOR_UPDATE = f"{VOLUNTEER_BY_ID} FOR UPDATE"
VOLUNTEERS_RECRUITED_BY = f"SELECT {PUBLIC_SELECT} FROM volunteers WHERE recruited_by = CAST(:id AS uuid) ORDER BY created_at"
MOVE_VOLUNTEERS_UNDER = (
    "UPDATE volunteers SET org_path = CAST(:new AS text) || substr(org_path, :cut), version = version + 1, updated_at = now() "
    f"WHERE org_path = :old OR org_path LIKE :like RETURNING {PUBLIC_SELECT}"
)
SET_TRAINING_STANDING = (
    "UPDATE volunteers AS v SET training_compliant = c.compliant, training_flagged_on = c.flagged, "
    "specialised_eligible = c.eligible, version = v.version + 1, updated_at = now() "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:compliant AS boolean[]), CAST(:flagged AS date[]), CAST(:eligible AS boolean[])) "
    f"AS c(id, compliant, flagged, eligible) WHERE v.id = c.id RETURNING {PUBLIC_SELECT_OF_V}"
)
NEXT_NUMBERS_SQL = "SELECT nextval('volunteer_number_seq') FROM generate_series(1, $1)"  # asyncpg: $1 numbers to take


def volunteers_page_sql(where: str) -> str:
    """One page of volunteers matching `where` (binds :limit, :offset), newest first."""
    return f"SELECT {PUBLIC_SELECT} FROM volunteers WHERE {where} ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset"


def update_volunteer_sql(assignments: list[str]) -> str:
    """Set `assignments` on the volunteer :vid, returning its public view."""
    return f"UPDATE volunteers SET {', '.join(assignments)} WHERE id = CAST(:vid AS uuid) RETURNING {PUBLIC_SELECT}"
