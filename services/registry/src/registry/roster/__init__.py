"""Bulk import of volunteer rosters from CSV: per-row validation, encryption, COPY, safe to re-run.

The file must be UTF-8 (a BOM is fine); headers may be English or Chinese. `parse` decodes it, maps the headers
and cuts the text into pieces that end on record boundaries; `rows` checks each row (line number, field and reason)
and makes it a named `volunteers` record with its history row and its first `VolunteerState` outbox row; `write`
COPYs a prepared piece in one transaction, leaving out people already registered (a savepoint, then a staging table
with `ON CONFLICT DO NOTHING`); `jobs` runs an import: worker processes prepare pieces while earlier ones are
written, two at a time; `job_queue` keeps uploaded rosters as jobs that the import worker takes one at a time.
"""

from registry.roster.jobs import ImportReport, import_roster, load_lookups
from registry.roster.parse import RowError, decode_roster, line_count, read_header, read_piece, split_pieces
from registry.roster.rows import Lookups, PreparedChunk, RowRejected, VolunteerRecord, build_record, prepare_chunk
from registry.roster.write import write_chunk

__all__ = [
    "ImportReport", "Lookups", "PreparedChunk", "RowError", "RowRejected", "VolunteerRecord", "build_record", "decode_roster",
    "import_roster", "line_count", "load_lookups", "prepare_chunk", "read_header", "read_piece", "split_pieces", "write_chunk",
]
