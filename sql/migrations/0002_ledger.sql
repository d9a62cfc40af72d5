-- 0002: the immutable ledger, one row per LedgerEntry (schemas/ledger.py), column for column.
--
-- Written only by the sink (metering/sink), read by the analyst queries (sql/queries) and the
-- rollups (0003). Nothing updates or deletes a row: corrections are new entries that
-- reference the original (kind = 'adjustment', adjusts_entry_id).
--
-- Engine: ReplacingMergeTree, not plain MergeTree with dedup tokens alone. Why:
-- * An insert token only dedups the *same block* retried: it covers the sink retrying one
--   batch after a timeout. It cannot catch the same entry arriving in a different block,
--   which does happen: the Faust worker is at-least-once and re-emits the identical entry
--   (same entry_id) after a crash, and a sink that restarts before committing re-reads its
--   last batch and may cut it at different offsets (batches close on size *or* time).
-- * ReplacingMergeTree collapses rows with the same sorting key at merge time. entry_id is a
--   pure function of (account, request) and a re-emitted entry is byte-identical, so its
--   (account_id, started_at, entry_id) key and its month partition are identical too.
-- * Merges are eventual, so every query over this table reads it with FINAL (or GROUP BY
--   entry_id): sql/queries does. The sink also skips entries already stored before it
--   inserts, so the rollups of 0003 (fed per inserted block) do not count re-deliveries.
-- No version column: duplicates are identical, which copy survives does not matter.
--
-- non_replicated_deduplication_window: on a non-replicated table the server remembers the
-- hashes (or insert_deduplication_token) of this many recent blocks, so the sink's retried
-- insert of one batch (same token) lands once. 1000 blocks: the sink retries a batch before
-- it inserts anything else, so the window only needs to outlast what other writers insert
-- meanwhile; a batch spanning N months is N blocks.
--
-- Types: money and Flows are Decimal(38, 12) (the contract's Money: exact, 12 fractional
-- digits; computed in Python, never multiplied here). Times are DateTime64(6, 'UTC'): the
-- contract carries microseconds and UTC. Enums and small vocabularies (kind, funding,
-- channel, model, plan, catalog version...) are LowCardinality(String): a dictionary per
-- part, tiny on disk and fast to group by, and a new value (a new model, a new plan) needs
-- no ALTER, unlike Enum8.
CREATE TABLE IF NOT EXISTS {db}.ledger
(
    schema_version UInt8,
    entry_id String,
    kind LowCardinality(String),
    account_id String,
    request_id String,
    api_key_id String,
    model LowCardinality(String),
    channel LowCardinality(String),
    billing_mode LowCardinality(String),
    status LowCardinality(String),
    started_at DateTime64(6, 'UTC'),
    completed_at DateTime64(6, 'UTC'),
    input_tokens UInt64,
    cached_input_tokens UInt64,
    output_tokens UInt64,
    images UInt64,
    plan_family LowCardinality(String),
    plan LowCardinality(Nullable(String)),
    funding LowCardinality(String),
    fallback_key_id Nullable(String),
    list_cost_usd Decimal(38, 12),
    multiplier Decimal(38, 12),
    supply_state LowCardinality(Nullable(String)),
    discount_effective_at Nullable(DateTime64(6, 'UTC')),
    catalog_version LowCardinality(String),
    flows Decimal(38, 12),
    charge_usd Decimal(38, 12),
    debit Decimal(38, 12),
    unit LowCardinality(String),
    window_5h_id Nullable(String),
    window_7d_id Nullable(String),
    period_id Nullable(String),
    overshoot Decimal(38, 12),
    late Bool,
    adjusts_entry_id Nullable(String),
    reason Nullable(String),
    source_topic LowCardinality(String),
    source_partition Int32,
    source_offset Int64,
    -- Audits look entries up by id ("show me entry X and its corrections") without knowing
    -- the account: a bloom filter skips the granules that cannot hold it.
    INDEX entry_id_bloom entry_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX adjusts_entry_id_bloom adjusts_entry_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
-- Month of admission: a bill or a window is attributed by started_at, so a period's queries
-- read one or two partitions; a month is coarse enough to keep the part count low.
-- Stragglers keep their own started_at, so a re-emitted entry lands in its original's
-- partition (ReplacingMergeTree only collapses rows within one partition).
PARTITION BY toYYYYMM(started_at)
-- Per-account reads first (usage, bills, leakage by account), then time within the account;
-- entry_id last makes the key unique per entry, which is what ReplacingMergeTree collapses on.
ORDER BY (account_id, started_at, entry_id)
SETTINGS non_replicated_deduplication_window = 1000;
