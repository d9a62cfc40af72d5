-- Every window of one account with what it consumed: the history behind current_window_usage.
--
-- Parameters: {db:Identifier}, {account_id:String}.
-- One row per (window kind, window id): consumed = sum(debit) (flows or usd, see `unit`),
-- funded_requests = subscription-funded charges, entries = all entries naming the window
-- (payg and unfunded requests that fell in it debit 0), overshoot = what crossing requests
-- charged beyond the cap. Remaining is not reported (no cap in the ledger; see
-- current_window_usage.sql). FINAL: each entry once (ReplacingMergeTree).
SELECT
    window.1 AS window_kind,
    assumeNotNull(window.2) AS window_id,
    parseDateTime64BestEffort(splitByChar('/', window_id)[-1], 6, 'UTC') AS opened_at,
    any(unit) AS unit,
    sum(debit) AS consumed,
    countIf(kind = 'charge' AND funding = 'subscription') AS funded_requests,
    count() AS entries,
    max(overshoot) AS overshoot
FROM {db:Identifier}.ledger FINAL
ARRAY JOIN [('5h', window_5h_id), ('7d', window_7d_id), ('period', period_id)] AS window
WHERE account_id = {account_id:String} AND window.2 IS NOT NULL
GROUP BY window_kind, window_id
ORDER BY indexOf(['5h', '7d', 'period'], window_kind), opened_at;
