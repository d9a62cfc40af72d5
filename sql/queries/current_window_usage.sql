-- Current window usage of one account: what it consumed in each window active at {as_of}.
--
-- Parameters: {db:Identifier} the ledger database, {account_id:String},
--             {as_of:DateTime64(6, 'UTC')} the instant to look at (usually now).
-- One row per window kind (5h, 7d, period) whose window is active at as_of:
--   consumed = sum(debit) of every entry naming the window id (charges and their
--   corrections), in the account's unit (flows for ZenMux, usd for Lilac). The billing core
--   guarantees this equals the window's own `consumed` (billing/README.md, invariants).
-- Remaining is NOT reported: the cap is not in the ledger. It is catalog data (plan caps,
-- Lilac included usage x share) and appears on metering.quota only when a window is
-- exhausted or restored; remaining = cap - consumed is for the caller who knows the cap.
-- When a window opened and resets comes from its id (<account>/<kind>/<opened_at>, see
-- billing/windows.py window_id) and the SPEC's fixed lengths (5 hours, 7 days). A billing
-- period's end is not in the ledger either: the latest period opened at or before as_of is
-- reported as current (resets_at NULL).
-- FINAL: the ledger is a ReplacingMergeTree; FINAL counts each entry_id once even before
-- duplicates are merged away.
SELECT
    window_kind,
    window_id,
    opened_at,
    resets_at,
    unit,
    consumed,
    funded_requests,
    entries
FROM
(
    SELECT
        window_kind,
        window_id,
        opened_at,
        resets_at,
        unit,
        consumed,
        funded_requests,
        entries,
        row_number() OVER (PARTITION BY window_kind ORDER BY opened_at DESC) AS recency
    FROM
    (
        SELECT
            window.1 AS window_kind,
            assumeNotNull(window.2) AS window_id,
            parseDateTime64BestEffort(splitByChar('/', window_id)[-1], 6, 'UTC') AS opened_at,
            multiIf(
                window_kind = '5h', opened_at + INTERVAL 5 HOUR,
                window_kind = '7d', opened_at + INTERVAL 7 DAY,
                NULL
            ) AS resets_at,
            any(unit) AS unit,
            sum(debit) AS consumed,
            countIf(kind = 'charge' AND funding = 'subscription') AS funded_requests,
            count() AS entries
        FROM {db:Identifier}.ledger FINAL
        ARRAY JOIN [('5h', window_5h_id), ('7d', window_7d_id), ('period', period_id)] AS window
        WHERE account_id = {account_id:String} AND window.2 IS NOT NULL
        GROUP BY window_kind, window_id
    )
    WHERE opened_at <= {as_of:DateTime64(6, 'UTC')}
)
WHERE recency = 1 AND (resets_at IS NULL OR resets_at > {as_of:DateTime64(6, 'UTC')})
ORDER BY indexOf(['5h', '7d', 'period'], window_kind);
