-- Registry: org hierarchy, grids, staff, teams, volunteers (PII encrypted), invites, training, audit.
CREATE TABLE org_units (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('county', 'town', 'branch', 'station')),
    parent_id   UUID REFERENCES org_units (id),
    path        TEXT NOT NULL UNIQUE,
    depth       SMALLINT NOT NULL,
    lat         DOUBLE PRECISION,
    lon         DOUBLE PRECISION,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX org_units_path_idx ON org_units (path text_pattern_ops);
CREATE INDEX org_units_parent_idx ON org_units (parent_id);
CREATE UNIQUE INDEX org_units_sibling_name_idx ON org_units (coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

CREATE TABLE org_unit_moves (
    id             BIGSERIAL PRIMARY KEY,
    org_unit_id    UUID NOT NULL REFERENCES org_units (id),
    old_parent_id  UUID,
    new_parent_id  UUID NOT NULL,
    old_path       TEXT NOT NULL,
    new_path       TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    moved_by       TEXT NOT NULL,
    moved_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX org_unit_moves_unit_idx ON org_unit_moves (org_unit_id, moved_at);

CREATE TABLE staff (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    org_unit_id    UUID REFERENCES org_units (id),
    scope_path     TEXT NOT NULL DEFAULT '',
    active         BOOLEAN NOT NULL DEFAULT true,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX staff_scope_idx ON staff (scope_path text_pattern_ops);

CREATE TABLE grids (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL,
    station_id      UUID NOT NULL REFERENCES org_units (id),
    org_path        TEXT NOT NULL,
    grid_worker_id  UUID REFERENCES staff (id),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (station_id, name)
);
CREATE INDEX grids_path_idx ON grids (org_path text_pattern_ops);

CREATE TABLE teams (
    code         TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT ''
);
INSERT INTO teams (code, name, description) VALUES
    ('psychological_counselling', '心理咨询疏导队', '心理疏导与危机干预'),
    ('traffic_civility', '交通文明劝导队', '路口文明劝导、交通秩序维护'),
    ('dispute_mediation', '矛盾纠纷调解队', '邻里、家庭、物业等纠纷的诉前调解'),
    ('legal_publicity', '法治宣传队', '普法宣传、以案释法'),
    ('voluntary_patrol', '义务巡防队', '治安巡逻、重点部位守护'),
    ('anti_fraud', '反电诈宣传队', '反电信网络诈骗宣传进校园、进社区'),
    ('drug_prevention', '禁毒宣传队', '禁毒宣传与线索收集'),
    ('fire_safety', '消防安全队', '消防隐患排查与初期火灾处置'),
    ('emergency_rescue', '应急救援队', '防汛抗台、突发事件救援'),
    ('medical_aid', '医疗救护队', '现场急救、医疗保障'),
    ('youth_care', '青少年关爱帮教队', '闲散青少年、留守儿童、服刑人员子女关爱'),
    ('campus_safety', '护校安园队', '上下学时段校园周边守护'),
    ('information_collection', '平安信息员队', '社情民意与治安信息收集'),
    ('community_correction', '社区矫正帮扶队', '社区矫正对象帮扶教育'),
    ('red_armband', '红袖标治安队', '环卫、城管、驾驶员等行业力量的群防群治'),
    ('legal_aid', '法律援助服务队', '退休法官、律师提供诉讼引导与法律援助');

CREATE TABLE volunteers (
    id                    UUID PRIMARY KEY,
    real_name             TEXT NOT NULL,
    display_name          TEXT NOT NULL,
    national_id_enc       BYTEA NOT NULL,
    national_id_index     TEXT NOT NULL UNIQUE,
    national_id_masked    TEXT NOT NULL,
    phone_enc             BYTEA NOT NULL,
    phone_index           TEXT NOT NULL UNIQUE,
    phone_masked          TEXT NOT NULL,
    birth_date            DATE NOT NULL,
    gender                TEXT NOT NULL,
    org_unit_id           UUID NOT NULL REFERENCES org_units (id),
    org_path              TEXT NOT NULL,
    grid_id               UUID REFERENCES grids (id),
    recruited_by          UUID REFERENCES staff (id),
    lat                   DOUBLE PRECISION,
    lon                   DOUBLE PRECISION,
    core                  BOOLEAN NOT NULL DEFAULT false,
    recruitment_mode      TEXT NOT NULL DEFAULT 'long_term',
    service_types         TEXT[] NOT NULL DEFAULT '{}',
    teams                 TEXT[] NOT NULL DEFAULT '{}',
    skills                TEXT[] NOT NULL DEFAULT '{}',
    certificates          JSONB NOT NULL DEFAULT '[]'::jsonb,
    availability          JSONB NOT NULL DEFAULT '[]'::jsonb,
    status                TEXT NOT NULL DEFAULT 'applicant',
    status_reason         TEXT NOT NULL DEFAULT '',
    star                  SMALLINT NOT NULL DEFAULT 1,
    training_compliant    BOOLEAN NOT NULL DEFAULT true,
    training_flagged_on   DATE,
    specialised_eligible  BOOLEAN NOT NULL DEFAULT true,
    joined_on             DATE NOT NULL DEFAULT current_date,
    version               BIGINT NOT NULL DEFAULT 1,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX volunteers_path_idx ON volunteers (org_path text_pattern_ops);
CREATE INDEX volunteers_grid_idx ON volunteers (grid_id);
CREATE INDEX volunteers_recruiter_idx ON volunteers (recruited_by);

CREATE TABLE volunteer_status_changes (
    id            BIGSERIAL PRIMARY KEY,
    volunteer_id  UUID NOT NULL REFERENCES volunteers (id),
    from_status   TEXT,
    to_status     TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    changed_by    TEXT NOT NULL,
    changed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX volunteer_status_changes_idx ON volunteer_status_changes (volunteer_id, changed_at);

CREATE TABLE pii_reveals (
    id            BIGSERIAL PRIMARY KEY,
    volunteer_id  UUID NOT NULL REFERENCES volunteers (id),
    fields        TEXT[] NOT NULL,
    reason        TEXT NOT NULL,
    revealed_by   TEXT NOT NULL,
    role          TEXT NOT NULL,
    revealed_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE invites (
    id           UUID PRIMARY KEY,
    grid_id      UUID NOT NULL REFERENCES grids (id),
    org_path     TEXT NOT NULL,
    issued_by    TEXT NOT NULL,
    recruiter_id UUID REFERENCES staff (id),
    max_uses     INTEGER NOT NULL CHECK (max_uses > 0),
    uses         INTEGER NOT NULL DEFAULT 0,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked      BOOLEAN NOT NULL DEFAULT false,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE training_sessions (
    id           UUID PRIMARY KEY,
    title        TEXT NOT NULL,
    level        TEXT NOT NULL CHECK (level IN ('county', 'town', 'village')),
    topic        TEXT NOT NULL CHECK (topic IN ('ethics', 'skills', 'discipline')),
    org_unit_id  UUID NOT NULL REFERENCES org_units (id),
    org_path     TEXT NOT NULL,
    held_on      DATE NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE training_attendance (
    id            UUID PRIMARY KEY,
    session_id    UUID NOT NULL REFERENCES training_sessions (id),
    volunteer_id  UUID NOT NULL REFERENCES volunteers (id),
    attended_on   DATE NOT NULL,
    recorded_by   TEXT NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (session_id, volunteer_id)
);
CREATE INDEX training_attendance_volunteer_idx ON training_attendance (volunteer_id, attended_on);
