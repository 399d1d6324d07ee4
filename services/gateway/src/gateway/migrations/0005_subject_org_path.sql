-- Where each volunteer belongs (registry's org path), so a bulletin published for an area reaches the volunteers in it.
ALTER TABLE subject_status ADD COLUMN IF NOT EXISTS org_path TEXT;
CREATE INDEX IF NOT EXISTS subject_status_volunteer_path_idx ON subject_status (org_path text_pattern_ops) WHERE kind = 'volunteer' AND allowed;
