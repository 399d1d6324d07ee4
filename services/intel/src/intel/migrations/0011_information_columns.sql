-- Information columns (信息栏目): the public, read-only columns of the county's online platforms. Four are the brief's
-- (public-needs collection, safety broadcasts, police services, traffic-violation lookup); staff may add curated ones.
CREATE TABLE info_columns (
    id          TEXT PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{1,39}$'),
    title       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('needs_form', 'broadcasts', 'curated', 'lookup')),
    org_path    TEXT NOT NULL DEFAULT '',  -- '' = the county (intel's default org path)
    publisher   TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position    INT NOT NULL DEFAULT 100,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO info_columns (id, title, kind, publisher, description, position) VALUES
    ('needs', '群众需求采集', 'needs_form', '平安法治志愿者联盟',
     '有困难、有需求，在这里告诉我们；由所在村（社区）志愿者工作站办理。', 10),
    ('broadcasts', '平安法治播报', 'broadcasts', '平安法治志愿者联盟', '按案件类型发布的平安法治信息（期号）。', 20),
    ('police_services', '警务服务', 'curated', '县公安局', '办事指南与便民服务。', 30),
    ('violations', '违章查询', 'lookup', '县公安局交警大队', '凭号牌号码和车辆识别代号后六位查询交通违法记录。', 40);

-- Items of curated columns, published by staff for an area (an area sees its own items and those of the areas above).
CREATE TABLE info_column_items (
    id            UUID PRIMARY KEY,
    column_id     TEXT NOT NULL REFERENCES info_columns(id),
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    link          TEXT,
    org_path      TEXT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    withdrawn_at  TIMESTAMPTZ
);
CREATE INDEX info_column_items_column_idx ON info_column_items (column_id, published_at DESC) WHERE withdrawn_at IS NULL;
