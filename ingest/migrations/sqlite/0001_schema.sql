-- Geoward schema, SQLite flavour (embedded default). Same semantics as the
-- PostgreSQL schema; timestamps are RFC 3339 UTC text as sqlx writes them.

CREATE TABLE offices (
    id          TEXT PRIMARY KEY,
    parent_id   TEXT REFERENCES offices(id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('city_bureau', 'county_bureau', 'justice_office')),
    created_at  TEXT NOT NULL
);
CREATE INDEX offices_parent ON offices(parent_id);

CREATE TABLE subjects (
    id                 TEXT PRIMARY KEY,
    office_id          TEXT NOT NULL REFERENCES offices(id),
    name               TEXT NOT NULL,
    supervision_level  TEXT NOT NULL CHECK (supervision_level IN ('strict', 'normal', 'lenient')),
    created_at         TEXT NOT NULL
);
CREATE INDEX subjects_office ON subjects(office_id);

CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('bracelet', 'phone')),
    subject_id     TEXT REFERENCES subjects(id),
    password_hash  TEXT NOT NULL,
    payload_key    TEXT NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT NOT NULL
);
CREATE INDEX devices_subject ON devices(subject_id);

CREATE TABLE monitoring_orders (
    id            TEXT PRIMARY KEY,
    subject_id    TEXT NOT NULL REFERENCES subjects(id),
    legal_basis   TEXT NOT NULL CHECK (legal_basis IN ('prohibition_order', 'absconding', 'warned_leaving_area', 'warned_violation', 'own_request')),
    approver      TEXT NOT NULL,
    starts_at     TEXT NOT NULL,
    ends_at       TEXT NOT NULL,
    renews_order_id TEXT REFERENCES monitoring_orders(id),
    created_at    TEXT NOT NULL,
    CHECK (ends_at > starts_at),
    CHECK (julianday(ends_at) - julianday(starts_at) <= 92)
);
CREATE INDEX orders_subject ON monitoring_orders(subject_id, starts_at);

CREATE TABLE zones (
    id          TEXT PRIMARY KEY,
    office_id   TEXT NOT NULL REFERENCES offices(id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('permitted', 'exclusion', 'home', 'leave')),
    geojson     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE subject_rules (
    id          TEXT PRIMARY KEY,
    subject_id  TEXT NOT NULL REFERENCES subjects(id),
    kind        TEXT NOT NULL CHECK (kind IN ('stay_inside', 'keep_out', 'curfew')),
    zone_id     TEXT NOT NULL REFERENCES zones(id),
    params      TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX rules_subject ON subject_rules(subject_id);

CREATE TABLE leave_permits (
    id                 TEXT PRIMARY KEY,
    subject_id         TEXT NOT NULL REFERENCES subjects(id),
    destination_zone_id TEXT REFERENCES zones(id),
    suspends_rule_id   TEXT REFERENCES subject_rules(id),
    approver           TEXT NOT NULL,
    starts_at          TEXT NOT NULL,
    ends_at            TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX leave_subject ON leave_permits(subject_id, starts_at);

-- One row per position fix; a resent fix has the same (device_id, seq) and is
-- ignored on insert (the pipeline dedupes first).
CREATE TABLE fixes (
    device_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    fix_time     TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    lat          REAL NOT NULL,
    lon          REAL NOT NULL,
    accuracy_m   REAL,
    source       TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE INDEX fixes_device_time ON fixes(device_id, fix_time);
CREATE INDEX fixes_time ON fixes(fix_time);

CREATE TABLE device_events (
    device_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    event_time   TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;

CREATE TABLE incidents (
    id           TEXT PRIMARY KEY,
    subject_id   TEXT NOT NULL REFERENCES subjects(id),
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX incidents_subject ON incidents(subject_id, opened_at);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject_id  TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_subject ON audit_log(subject_id, at);

-- Raw payload of every accepted message with a per-device SHA-256 hash chain.
CREATE TABLE evidence (
    device_id    TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    seq_min      INTEGER NOT NULL,
    seq_max      INTEGER NOT NULL,
    received_at  TEXT NOT NULL,
    topic        TEXT NOT NULL,
    payload      BLOB NOT NULL,
    prev_hash    BLOB NOT NULL,
    hash         BLOB NOT NULL,
    PRIMARY KEY (device_id, idx)
) WITHOUT ROWID;
CREATE INDEX evidence_received ON evidence(received_at);

-- Head of each evidence chain, updated in the same transaction: deleting the
-- newest evidence row is detected against it.
CREATE TABLE evidence_heads (
    device_id  TEXT PRIMARY KEY,
    idx        INTEGER NOT NULL,
    hash       BLOB NOT NULL
);

-- Durable ack state: highest contiguous sequence stored per device.
CREATE TABLE device_progress (
    device_id   TEXT PRIMARY KEY,
    acked_seq   INTEGER NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('officer', 'bureau', 'admin')),
    office_id   TEXT REFERENCES offices(id),
    created_at  TEXT NOT NULL
);
