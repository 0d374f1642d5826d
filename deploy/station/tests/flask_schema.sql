-- The Flask EAS Station's tables that `eas-station import-flask` reads, written for these tests
-- from its SQLAlchemy models (app_core/_models_*.py) at the Alembic head of KR8MER/eas-station
-- (location filter codes split into alert_filter_settings by 20260506_split_location_settings).
-- PostGIS geometry columns are left out: the import does not read them, and the test
-- PostgreSQL has no PostGIS.

CREATE TABLE alembic_version (version_num VARCHAR(255) PRIMARY KEY);

CREATE TABLE roles (
    id SERIAL PRIMARY KEY,
    name VARCHAR(50) NOT NULL UNIQUE,
    description VARCHAR(255),
    created_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);

CREATE TABLE admin_users (
    id SERIAL PRIMARY KEY,
    username VARCHAR(64) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    salt VARCHAR(255),
    is_active BOOLEAN DEFAULT TRUE,
    created_at TIMESTAMPTZ,
    last_login_at TIMESTAMPTZ,
    role_id INTEGER REFERENCES roles(id) ON DELETE SET NULL,
    password_changed_at TIMESTAMPTZ,
    mfa_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    mfa_secret TEXT,
    mfa_backup_codes_hash TEXT,
    mfa_enrolled_at TIMESTAMPTZ,
    mfa_last_totp_at TIMESTAMPTZ,
    mfa_last_totp_counter BIGINT
);

CREATE TABLE cap_alerts (
    id SERIAL PRIMARY KEY,
    identifier VARCHAR(255) NOT NULL UNIQUE,
    sent TIMESTAMPTZ NOT NULL,
    expires TIMESTAMPTZ,
    status VARCHAR(50) NOT NULL,
    message_type VARCHAR(50) NOT NULL,
    scope VARCHAR(50) NOT NULL,
    category VARCHAR(50),
    event VARCHAR(255) NOT NULL,
    urgency VARCHAR(50),
    severity VARCHAR(50),
    certainty VARCHAR(50),
    area_desc TEXT,
    headline TEXT,
    description TEXT,
    instruction TEXT,
    raw_json JSON,
    source VARCHAR(32) NOT NULL DEFAULT 'unknown',
    eas_forwarded BOOLEAN NOT NULL DEFAULT FALSE,
    eas_forwarding_reason VARCHAR(255),
    eas_audio_url VARCHAR(512),
    signature_verified BOOLEAN,
    signature_status VARCHAR(255),
    certificate_info JSON,
    ipaws_audio_url VARCHAR(512),
    vtec_office VARCHAR(4),
    vtec_phenomenon VARCHAR(2),
    vtec_significance VARCHAR(1),
    vtec_etn INTEGER,
    vtec_year INTEGER,
    vtec_action VARCHAR(3),
    superseded_by_id INTEGER REFERENCES cap_alerts(id) ON DELETE SET NULL,
    cancelled_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);

CREATE TABLE location_settings (
    id SERIAL PRIMARY KEY,
    county_name VARCHAR(255) NOT NULL,
    state_code VARCHAR(2) NOT NULL,
    timezone VARCHAR(64) NOT NULL,
    map_center_lat DOUBLE PRECISION NOT NULL,
    map_center_lng DOUBLE PRECISION NOT NULL,
    map_default_zoom INTEGER NOT NULL,
    updated_at TIMESTAMPTZ
);

CREATE TABLE alert_filter_settings (
    id SERIAL PRIMARY KEY,
    fips_codes JSONB NOT NULL DEFAULT '["039137"]'::jsonb,
    zone_codes JSONB NOT NULL DEFAULT '[]'::jsonb,
    storage_zone_codes JSONB NOT NULL DEFAULT '[]'::jsonb,
    area_terms JSONB NOT NULL DEFAULT '[]'::jsonb,
    updated_at TIMESTAMPTZ
);

CREATE TABLE eas_messages (
    id SERIAL PRIMARY KEY,
    cap_alert_id INTEGER REFERENCES cap_alerts(id) ON DELETE SET NULL,
    alert_identifier VARCHAR(255),
    same_header VARCHAR(255) NOT NULL,
    audio_filename VARCHAR(255) NOT NULL,
    text_filename VARCHAR(255) NOT NULL,
    audio_data BYTEA,
    eom_audio_data BYTEA,
    same_audio_data BYTEA,
    attention_audio_data BYTEA,
    tts_audio_data BYTEA,
    buffer_audio_data BYTEA,
    tts_warning VARCHAR(255),
    tts_provider VARCHAR(32),
    text_payload JSON,
    created_at TIMESTAMPTZ,
    metadata_payload JSON
);

CREATE TABLE received_eas_alerts (
    id SERIAL PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL,
    source_name VARCHAR(100) NOT NULL,
    alert_source VARCHAR(32),
    raw_same_header TEXT,
    event_code VARCHAR(8),
    event_name VARCHAR(255),
    originator_code VARCHAR(8),
    originator_name VARCHAR(100),
    fips_codes JSON,
    issue_datetime TIMESTAMPTZ,
    purge_datetime TIMESTAMPTZ,
    callsign VARCHAR(16),
    forwarding_decision VARCHAR(20) NOT NULL,
    forwarding_reason TEXT,
    matched_fips_codes JSON,
    generated_message_id INTEGER REFERENCES eas_messages(id),
    forwarded_at TIMESTAMPTZ,
    full_alert_data JSONB,
    decode_confidence DOUBLE PRECISION,
    raw_audio_data BYTEA
);

CREATE TABLE manual_eas_activations (
    id SERIAL PRIMARY KEY,
    identifier VARCHAR(120) NOT NULL,
    event_code VARCHAR(8) NOT NULL,
    event_name VARCHAR(255) NOT NULL,
    status VARCHAR(32) NOT NULL,
    message_type VARCHAR(32) NOT NULL,
    same_header VARCHAR(255) NOT NULL,
    same_locations JSON NOT NULL,
    tone_profile VARCHAR(32) NOT NULL,
    tone_seconds DOUBLE PRECISION,
    sample_rate INTEGER,
    includes_tts BOOLEAN DEFAULT FALSE,
    tts_warning VARCHAR(255),
    sent_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,
    headline VARCHAR(240),
    message_text TEXT,
    instruction_text TEXT,
    duration_minutes DOUBLE PRECISION,
    storage_path VARCHAR(255) NOT NULL,
    summary_filename VARCHAR(255),
    components_payload JSON NOT NULL,
    metadata_payload JSON NOT NULL,
    created_at TIMESTAMPTZ,
    archived_at TIMESTAMPTZ,
    triggered_at TIMESTAMPTZ,
    created_by VARCHAR(100),
    triggered_by VARCHAR(100),
    created_by_ip VARCHAR(45),
    triggered_by_ip VARCHAR(45),
    composite_audio_data BYTEA,
    same_audio_data BYTEA,
    attention_audio_data BYTEA,
    tts_audio_data BYTEA,
    eom_audio_data BYTEA
);

CREATE TABLE audio_source_configs (
    id SERIAL PRIMARY KEY,
    name VARCHAR(100) NOT NULL UNIQUE,
    source_type VARCHAR(20) NOT NULL,
    config JSONB NOT NULL,
    priority INTEGER DEFAULT 0,
    enabled BOOLEAN DEFAULT TRUE,
    auto_start BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ,
    description TEXT
);

CREATE TABLE rwt_schedule_config (
    id SERIAL PRIMARY KEY,
    enabled BOOLEAN NOT NULL DEFAULT FALSE,
    days_of_week JSONB NOT NULL DEFAULT '[]'::jsonb,
    start_hour INTEGER NOT NULL DEFAULT 8,
    start_minute INTEGER NOT NULL DEFAULT 0,
    end_hour INTEGER NOT NULL DEFAULT 16,
    end_minute INTEGER NOT NULL DEFAULT 0,
    same_codes JSONB NOT NULL DEFAULT '[]'::jsonb,
    updated_at TIMESTAMPTZ
);
