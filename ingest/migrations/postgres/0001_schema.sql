-- Geoward schema, PostgreSQL flavour. Same semantics as the SQLite schema.
-- fixes is a TimescaleDB hypertable when the extension is installed and
-- preloaded, else a natively partitioned table (range on fix_time) maintained
-- by geoward_maintain(); see deploy/POSTGRES.md.

CREATE TABLE offices (
    id          TEXT PRIMARY KEY,
    parent_id   TEXT REFERENCES offices(id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('city_bureau', 'county_bureau', 'justice_office')),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX offices_parent ON offices(parent_id);

CREATE TABLE subjects (
    id                 TEXT PRIMARY KEY,
    office_id          TEXT NOT NULL REFERENCES offices(id),
    name               TEXT NOT NULL,
    supervision_level  TEXT NOT NULL CHECK (supervision_level IN ('strict', 'normal', 'lenient')),
    created_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX subjects_office ON subjects(office_id);

CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('bracelet', 'phone')),
    subject_id     TEXT REFERENCES subjects(id),
    password_hash  TEXT NOT NULL,
    payload_key    TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX devices_subject ON devices(subject_id);

CREATE TABLE monitoring_orders (
    id            TEXT PRIMARY KEY,
    subject_id    TEXT NOT NULL REFERENCES subjects(id),
    legal_basis   TEXT NOT NULL CHECK (legal_basis IN ('prohibition_order', 'absconding', 'warned_leaving_area', 'warned_violation', 'own_request')),
    approver      TEXT NOT NULL,
    starts_at     TIMESTAMPTZ NOT NULL,
    ends_at       TIMESTAMPTZ NOT NULL,
    renews_order_id TEXT REFERENCES monitoring_orders(id),
    created_at    TIMESTAMPTZ NOT NULL,
    CHECK (ends_at > starts_at),
    CHECK (ends_at - starts_at <= INTERVAL '92 days')
);
CREATE INDEX orders_subject ON monitoring_orders(subject_id, starts_at);

CREATE TABLE zones (
    id          TEXT PRIMARY KEY,
    office_id   TEXT NOT NULL REFERENCES offices(id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('permitted', 'exclusion', 'home', 'leave')),
    geojson     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE subject_rules (
    id          TEXT PRIMARY KEY,
    subject_id  TEXT NOT NULL REFERENCES subjects(id),
    kind        TEXT NOT NULL CHECK (kind IN ('stay_inside', 'keep_out', 'curfew')),
    zone_id     TEXT NOT NULL REFERENCES zones(id),
    params      TEXT NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX rules_subject ON subject_rules(subject_id);

CREATE TABLE leave_permits (
    id                 TEXT PRIMARY KEY,
    subject_id         TEXT NOT NULL REFERENCES subjects(id),
    destination_zone_id TEXT REFERENCES zones(id),
    suspends_rule_id   TEXT REFERENCES subject_rules(id),
    approver           TEXT NOT NULL,
    starts_at          TIMESTAMPTZ NOT NULL,
    ends_at            TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX leave_subject ON leave_permits(subject_id, starts_at);

-- fixes: the partition key must be part of the primary key. A resent fix is
-- identical, so a duplicate has the same (device_id, seq, fix_time) and ON
-- CONFLICT DO NOTHING absorbs it in any partition; the pipeline also dedupes.
DO $$
DECLARE
    have_timescale boolean;
BEGIN
    SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND position('timescaledb' in current_setting('shared_preload_libraries', true)) > 0
      INTO have_timescale;
    IF have_timescale THEN
        EXECUTE 'CREATE EXTENSION IF NOT EXISTS timescaledb';
        EXECUTE $t$
            CREATE TABLE fixes (
                device_id    TEXT NOT NULL,
                seq          BIGINT NOT NULL,
                fix_time     TIMESTAMPTZ NOT NULL,
                received_at  TIMESTAMPTZ NOT NULL,
                lat          DOUBLE PRECISION NOT NULL,
                lon          DOUBLE PRECISION NOT NULL,
                accuracy_m   REAL,
                source       TEXT NOT NULL,
                PRIMARY KEY (device_id, seq, fix_time)
            )$t$;
        EXECUTE $t$SELECT create_hypertable('fixes', 'fix_time', chunk_time_interval => INTERVAL '7 days')$t$;
        EXECUTE $t$ALTER TABLE fixes SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'fix_time')$t$;
        EXECUTE $t$SELECT add_compression_policy('fixes', INTERVAL '14 days')$t$;
        EXECUTE $t$SELECT add_retention_policy('fixes', INTERVAL '365 days')$t$;
    ELSE
        CREATE TABLE fixes (
            device_id    TEXT NOT NULL,
            seq          BIGINT NOT NULL,
            fix_time     TIMESTAMPTZ NOT NULL,
            received_at  TIMESTAMPTZ NOT NULL,
            lat          DOUBLE PRECISION NOT NULL,
            lon          DOUBLE PRECISION NOT NULL,
            accuracy_m   REAL,
            source       TEXT NOT NULL,
            PRIMARY KEY (device_id, seq, fix_time)
        ) PARTITION BY RANGE (fix_time);
        -- Catches fixes outside every maintained partition (absurd device clocks).
        CREATE TABLE fixes_default PARTITION OF fixes DEFAULT;
    END IF;
END
$$;
CREATE INDEX fixes_device_time ON fixes(device_id, fix_time);

-- Creates partitions of fixes from retention ago to two intervals ahead and
-- drops partitions wholly older than the retention. With TimescaleDB it only
-- replaces the retention policy. Called at start-up and daily by geoward.
CREATE FUNCTION geoward_maintain(retention_days integer, interval_days integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    step      interval := make_interval(days => interval_days);
    cutoff    timestamptz := now() - make_interval(days => retention_days);
    lo        timestamptz;
    hi        timestamptz;
    part_name text;
    r         record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE 'SELECT remove_retention_policy(''fixes'', if_exists => true)';
        EXECUTE format('SELECT add_retention_policy(''fixes'', %L::interval)', make_interval(days => retention_days));
        DELETE FROM evidence WHERE received_at < cutoff;
        RETURN;
    END IF;
    -- Partition boundaries are aligned to multiples of the interval since the epoch.
    lo := to_timestamp(floor(extract(epoch FROM cutoff) / extract(epoch FROM step)) * extract(epoch FROM step));
    WHILE lo < now() + 2 * step LOOP
        hi := lo + step;
        part_name := 'fixes_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD') || '_' || interval_days;
        IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = part_name) THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF fixes FOR VALUES FROM (%L) TO (%L)', part_name, lo, hi);
        END IF;
        lo := hi;
    END LOOP;
    FOR r IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'fixes'::regclass AND c.relname <> 'fixes_default'
    LOOP
        IF (regexp_match(r.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz <= cutoff THEN
            EXECUTE format('DROP TABLE %I', r.relname);
        END IF;
    END LOOP;
    DELETE FROM evidence WHERE received_at < cutoff;
END
$$;

CREATE TABLE device_events (
    device_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    event_time   TIMESTAMPTZ NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    kind         TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE incidents (
    id           TEXT PRIMARY KEY,
    subject_id   TEXT NOT NULL REFERENCES subjects(id),
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    opened_at    TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX incidents_subject ON incidents(subject_id, opened_at);

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject_id  TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_subject ON audit_log(subject_id, at);

CREATE TABLE evidence (
    device_id    TEXT NOT NULL,
    idx          BIGINT NOT NULL,
    seq_min      BIGINT NOT NULL,
    seq_max      BIGINT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    topic        TEXT NOT NULL,
    payload      BYTEA NOT NULL,
    prev_hash    BYTEA NOT NULL,
    hash         BYTEA NOT NULL,
    PRIMARY KEY (device_id, idx)
);
CREATE INDEX evidence_received ON evidence(received_at);

CREATE TABLE evidence_heads (
    device_id  TEXT PRIMARY KEY,
    idx        BIGINT NOT NULL,
    hash       BYTEA NOT NULL
);

CREATE TABLE device_progress (
    device_id   TEXT PRIMARY KEY,
    acked_seq   BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_tokens (
    token_hash  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('officer', 'bureau', 'admin')),
    office_id   TEXT REFERENCES offices(id),
    created_at  TIMESTAMPTZ NOT NULL
);
