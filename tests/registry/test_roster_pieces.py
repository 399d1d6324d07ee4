"""Cutting a roster into pieces for the worker processes: the pieces read exactly as the whole file does. Pure."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shouwang_shared.contracts.registry import VolunteerState
from shouwang_shared.envelope import Envelope
from shouwang_shared.outbox import OUTBOX_COLUMNS, OutboxRow, shard_of

from registry import copy_binary as b
from registry.copy_binary import HEADER, TRAILER, EncodedRows
from registry.roster.parse import _numbered, line_count, read_piece, split_pieces
from registry.roster.rows import VOLUNTEER_FIELDS, VolunteerRecord, state_outbox_row
from registry.tables import INSERT_COLUMNS
from registry.volunteers import SealedIdentity

# Cells that exercise quoting: commas, quote marks, line breaks of every kind, blanks.
CELLS = st.sampled_from(["张三", "b c", '"q"', "x,y", "两\n行", "cr\rin", "crlf\r\nin", "", "  ", 'he said "hi"', "z"])
ROWS = st.lists(st.lists(CELLS, min_size=1, max_size=4), max_size=30)
# What a hand-edited file adds: a stray quote inside an unquoted field, a quoted field left open at the end, blank lines
# (some of spaces and commas), a lone carriage return between two unquoted records.
DAMAGE = st.sampled_from(["", 'a"b,c\n', '\n\n', 'last,"open\n', 'x""y,"z"w\n', ' , \n', 'p\rq,r\n'])


def whole_file_rows(body: str) -> list:
    reader = csv.reader(io.StringIO(body, newline=""))
    next(reader)
    return [item for item in _numbered(reader) if not hasattr(item, "reason")]


@settings(max_examples=300, deadline=None)
@given(rows=ROWS, terminator=st.sampled_from(["\n", "\r\n"]), damage=st.lists(DAMAGE, max_size=3),
       lines_per_piece=st.integers(min_value=1, max_value=6))
def test_pieces_read_as_the_whole_file_does_with_the_same_line_numbers(rows, terminator, damage, lines_per_piece):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow(["姓名", "备注"])
    writer.writerows(rows)
    body = out.getvalue() + "".join(damage)
    stream = io.StringIO(body, newline="")
    reader = csv.reader(stream)
    next(reader)
    pieces = list(split_pieces(body, stream.tell(), reader.line_num + 1, lines_per_piece))
    assert "".join(piece for _, piece in pieces) == body[stream.tell():]
    read = [line for first, piece in pieces for line in read_piece(first, piece)[0]]
    assert read == whole_file_rows(body)


def test_line_count_counts_every_kind_of_line_end():
    assert line_count("a\nb\r\nc\rd") == 3
    assert line_count("") == 0


@given(rows=st.lists(st.binary(max_size=20), max_size=12), data=st.data())
def test_encoded_rows_pick_the_rows_asked_for_in_order(rows, data):
    encoded = EncodedRows.join(rows)
    positions = data.draw(st.lists(st.integers(min_value=0, max_value=max(len(rows) - 1, 0)), max_size=len(rows))) if rows else []
    picked = encoded.pick(positions)
    assert len(picked) == len(positions) and picked.data == b"".join(rows[n] for n in positions)
    size = data.draw(st.integers(min_value=1, max_value=64))
    assert b"".join(encoded.copy_parts(size)) == HEADER + b"".join(rows) + TRAILER


def test_a_quote_left_open_early_grows_its_piece_in_doubling_steps(monkeypatch):
    from registry.roster import parse as roster

    checks = []
    real = roster._closes_its_records
    monkeypatch.setattr(roster, "_closes_its_records", lambda piece: checks.append(len(piece)) or real(piece))
    body = "姓名,备注\n" + 'a,"open\n' + "b,c\n" * 20_000
    pieces = list(split_pieces(body, len("姓名,备注\n"), 2, 10))
    assert len(pieces) == 1 and len(checks) <= 12  # 2,000 steps of 10 lines if it grew by a fixed step


def test_a_line_the_csv_module_refuses_is_named_and_the_others_read():
    piece = "a,b\n" + "c," + "x" * (csv.field_size_limit() + 1) + "\n" + "d,e\n"  # no quote mark: the quick read first
    lines, errors = read_piece(10, piece)
    assert lines == [(10, ["a", "b"]), (12, ["d", "e"])]
    assert [(e.line, e.field) for e in errors] == [(11, "row")]


def test_a_volunteer_record_names_the_columns_it_is_copied_into():
    assert VolunteerRecord._fields == (*INSERT_COLUMNS, "volunteer_number")  # the demo's plain records share the order
    assert VolunteerRecord._fields[1:1 + len(SealedIdentity._fields)] == SealedIdentity._fields  # build_record unpacks it
    assert set(VOLUNTEER_FIELDS) == set(VolunteerRecord._fields)


def test_a_row_encoder_encodes_each_field_by_its_column_and_refuses_a_field_without_one():
    class Row(NamedTuple):
        id: str
        teams: list[str]
        note: str | None

    encode = b.RowEncoder(Row, {"id": b.uuid_text, "teams": b.text_array, "note": b.text}, frozenset({"teams"}), lists=frozenset({"teams"}))
    row = Row("01a24042-b19a-7e94-a0f8-b321923a6bdf", ["巡逻", "急救"], None)
    expected = b.field_count(3) + b.uuid_text(row.id) + b.text_array(row.teams) + b.NULL
    assert encode(row) == expected and encode(row) == expected  # the second time from what it remembered
    assert encode(row._replace(teams=["驾驶"])) == b.field_count(3) + b.uuid_text(row.id) + b.text_array(["驾驶"]) + b.NULL
    with pytest.raises(ValueError, match="note"):
        b.RowEncoder(Row, {"id": b.uuid_text, "teams": b.text_array})


def test_a_roster_row_publishes_its_first_state_through_the_one_outbox_api():
    record = VolunteerRecord(
        "01a24042-b19a-7e94-a0f8-b321923a6bdf", "张三", "张*", b"enc", b"a" * 32, "110***********1234", b"enc", b"b" * 32,
        "138****0000", date(1990, 1, 1), "male", "01a24042-b19a-7e94-a0f8-b321923a6be0", "/c/t/s", None, None, 30.25, 120.17,
        True, "long_term", ["governance"], ["voluntary_patrol"], ["急救"], "[]", "[]", "active", "名册导入", date(2026, 12, 4), 42)
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    row = state_outbox_row(record, at, event_id="01a24042-b19a-7e94-a0f8-b321923a6be1")
    assert isinstance(row, OutboxRow) and row._fields == OUTBOX_COLUMNS
    assert (row.topic, row.key, row.shard) == (VolunteerState.TOPIC, record.id, shard_of(record.id))
    event = Envelope.from_bytes(row.payload)
    assert (event.id, event.type, event.subject) == (row.event_id, VolunteerState.TYPE, record.id)
    state = VolunteerState.model_validate(event.data)
    assert (state.volunteer_number, state.version, state.org_path, state.updated_at) == ("00000042", 1, "/c/t/s", at)
    with pytest.raises(ValidationError, match="status"):  # the contract model checks what the roster publishes
        state_outbox_row(record._replace(status="retired-ish"), at)
