-- 0003: rollups of the ledger for dashboards, fed by materialized views on insert.
--
-- Each view runs on every block inserted into {db}.ledger and appends its partial sums to a
-- SummingMergeTree target; merges add rows with equal keys together, eventually. So a read
-- must always aggregate again: sum(...) ... GROUP BY the key, never a bare SELECT.
--
-- Exactness under retries: a view sees inserted *blocks*, not the ledger's deduplicated
-- state, so a block that lands twice is counted twice. Two things prevent that:
-- * every target has non_replicated_deduplication_window, like the ledger: when the sink
--   retries a batch with the same insert_deduplication_token, the view's block is
--   deduplicated too (without the window on the target, the rollup counted the retry again);
-- * the sink drops entries already in the ledger before inserting (a worker re-emission, a
--   re-read after a restart), so a re-delivered entry never reaches a view.
-- The ledger itself (read with FINAL) stays the source of truth: sql/queries reads it, not
-- these rollups.
--
-- Keys hold no Nullable column (ORDER BY does not allow them by default): a missing window
-- id or plan is the empty string here. Money stays Decimal(38, 12); sums of it keep scale 12
-- (sums, not products, so no scale growth and no DECIMAL_OVERFLOW).

-- Usage per account, window and model, per hour of admission (started_at): what an
-- account consumed in each 5h / 7d window and on which models, for usage charts.
-- ORDER BY starts with account_id: these charts are per account.
CREATE TABLE IF NOT EXISTS {db}.usage_hourly
(
    hour DateTime('UTC'),
    account_id String,
    window_5h_id String,
    window_7d_id String,
    model LowCardinality(String),
    channel LowCardinality(String),
    funding LowCardinality(String),
    unit LowCardinality(String),
    requests UInt64,
    adjustments UInt64,
    input_tokens UInt64,
    cached_input_tokens UInt64,
    output_tokens UInt64,
    images UInt64,
    list_cost_usd Decimal(38, 12),
    charge_usd Decimal(38, 12),
    flows Decimal(38, 12),
    debit Decimal(38, 12)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (account_id, hour, window_5h_id, window_7d_id, model, channel, funding, unit)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.usage_hourly_mv TO {db}.usage_hourly AS
SELECT
    toStartOfHour(started_at) AS hour,
    account_id,
    ifNull(window_5h_id, '') AS window_5h_id,
    ifNull(window_7d_id, '') AS window_7d_id,
    model,
    channel,
    funding,
    unit,
    countIf(kind = 'charge') AS requests,
    countIf(kind = 'adjustment') AS adjustments,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(images) AS images,
    sum(list_cost_usd) AS list_cost_usd,
    sum(charge_usd) AS charge_usd,
    sum(flows) AS flows,
    sum(debit) AS debit
FROM {db}.ledger
GROUP BY hour, account_id, window_5h_id, window_7d_id, model, channel, funding, unit;

-- Cost per plan and model per day (UTC day of started_at), split by funding: the daily
-- revenue / cost picture. ORDER BY starts with day: these reports scan date ranges across
-- all accounts. Adjustments are included (their negative amounts are what was refunded).
CREATE TABLE IF NOT EXISTS {db}.cost_daily
(
    day Date,
    plan_family LowCardinality(String),
    plan LowCardinality(String),
    model LowCardinality(String),
    funding LowCardinality(String),
    unit LowCardinality(String),
    requests UInt64,
    adjustments UInt64,
    input_tokens UInt64,
    cached_input_tokens UInt64,
    output_tokens UInt64,
    images UInt64,
    list_cost_usd Decimal(38, 12),
    charge_usd Decimal(38, 12),
    flows Decimal(38, 12),
    debit Decimal(38, 12),
    overshoot Decimal(38, 12)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, plan_family, plan, model, funding, unit)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.cost_daily_mv TO {db}.cost_daily AS
SELECT
    toDate(started_at) AS day,
    plan_family,
    ifNull(plan, '') AS plan,
    model,
    funding,
    unit,
    countIf(kind = 'charge') AS requests,
    countIf(kind = 'adjustment') AS adjustments,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(images) AS images,
    sum(list_cost_usd) AS list_cost_usd,
    sum(charge_usd) AS charge_usd,
    sum(flows) AS flows,
    sum(debit) AS debit,
    sum(overshoot) AS overshoot
FROM {db}.ledger
GROUP BY day, plan_family, plan, model, funding, unit;

-- Discount savings: what Lilac subscribers did not pay thanks to the live supply-state
-- discount, list_cost_usd − charge_usd, per account, day, model and supply state.
-- Only Lilac subscription-funded *charges*: payg and unfunded entries pay list (multiplier
-- 1, no saving), ZenMux has no discount, and an adjustment is a refund, not a discount
-- (its list cost is 0, so list − charge would count the refund as a saving).
CREATE TABLE IF NOT EXISTS {db}.discount_savings_daily
(
    day Date,
    account_id String,
    plan LowCardinality(String),
    model LowCardinality(String),
    supply_state LowCardinality(String),
    multiplier Decimal(38, 12),
    requests UInt64,
    list_cost_usd Decimal(38, 12),
    charge_usd Decimal(38, 12),
    savings_usd Decimal(38, 12)
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (account_id, day, plan, model, supply_state, multiplier)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.discount_savings_daily_mv TO {db}.discount_savings_daily AS
SELECT
    toDate(started_at) AS day,
    account_id,
    ifNull(plan, '') AS plan,
    model,
    ifNull(supply_state, '') AS supply_state,
    multiplier,
    count() AS requests,
    sum(list_cost_usd) AS list_cost_usd,
    sum(charge_usd) AS charge_usd,
    -- qualified: unqualified names here would be the sums aliased above
    sum(ledger.list_cost_usd - ledger.charge_usd) AS savings_usd
FROM {db}.ledger AS ledger
WHERE plan_family = 'lilac' AND funding = 'subscription' AND kind = 'charge'
GROUP BY day, account_id, plan, model, supply_state, multiplier;
