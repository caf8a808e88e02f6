-- Incidents, their timelines, the notification outbox, the officers' live feed
-- and the hash-chained audit log. Alerting times are unix milliseconds (INTEGER),
-- the unit of the alerting core, identical on both backends.
-- The 0001 placeholders for incidents and the audit log were never written to.

DROP TABLE incidents;
DROP TABLE audit_log;

ALTER TABLE subjects ADD COLUMN expected_interval_s INTEGER NOT NULL DEFAULT 60
    CHECK (expected_interval_s > 0);

-- Where an office's notifications go. Secrets sign webhook bodies (HMAC-SHA256).
CREATE TABLE delivery_targets (
    id          TEXT PRIMARY KEY,
    office_id   TEXT NOT NULL REFERENCES offices(id),
    kind        TEXT NOT NULL CHECK (kind IN ('webhook', 'mqtt')),
    role        TEXT NOT NULL CHECK (role IN ('duty', 'police_liaison')),
    url         TEXT,
    secret      TEXT,
    CHECK (kind <> 'webhook' OR url IS NOT NULL)
);
CREATE INDEX targets_office ON delivery_targets(office_id);

-- The current header of every incident (JSON in `header`), with the columns
-- the list API filters on.
CREATE TABLE incidents (
    id              TEXT PRIMARY KEY,
    subject_id      TEXT NOT NULL,
    office_id       TEXT NOT NULL,
    escalated_to    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    severity        TEXT NOT NULL,
    handled         INTEGER NOT NULL,
    opened_at_ms    INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    header          TEXT NOT NULL
);
CREATE INDEX incidents_office ON incidents(office_id, opened_at_ms);
CREATE INDEX incidents_unhandled ON incidents(handled) WHERE handled = 0;

CREATE TABLE incident_timeline (
    incident_id  TEXT NOT NULL REFERENCES incidents(id),
    seq          INTEGER NOT NULL,
    at_ms        INTEGER NOT NULL,
    entry        TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);

-- At-least-once delivery: one row per notification, keyed by its idempotency key.
CREATE TABLE outbox (
    key              TEXT PRIMARY KEY,
    office_id        TEXT NOT NULL,
    target_id        TEXT NOT NULL,
    state            TEXT NOT NULL,
    next_attempt_ms  INTEGER,
    created_at_ms    INTEGER NOT NULL,
    record           TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox(next_attempt_ms) WHERE next_attempt_ms IS NOT NULL;

-- Every event of every office's live feed, so Last-Event-ID can resume.
CREATE TABLE feed_events (
    office_id  TEXT NOT NULL,
    id         INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (office_id, id)
);

-- Append-only audit log: officer actions, escalations, reads of locations.
-- `hash` chains each entry to the previous one (alerting::audit).
CREATE TABLE audit_chain (
    seq          INTEGER PRIMARY KEY,
    at_ms        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    incident_id  TEXT,
    detail       TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_action ON audit_chain(action, at_ms);
