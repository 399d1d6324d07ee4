-- What service hours were served in (ServiceHoursRecorded's activity fields): a project shift's hours carry the
-- project's name, kind, place and organising unit, so the national service record names them (operations' hours
-- also find theirs through the operation and assignment facts).
ALTER TABLE hours ADD COLUMN activity text, ADD COLUMN activity_name text, ADD COLUMN activity_kind text,
    ADD COLUMN place_name text, ADD COLUMN organiser_path text;
