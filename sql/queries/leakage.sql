-- Leakage: requests served after a window was exhausted with no fallback key (unfunded),
-- per account, with what they would have cost at list price.
--
-- Parameters: {db:Identifier}, {start:DateTime64(6, 'UTC')}, {end:DateTime64(6, 'UTC')}:
-- started_at in [start, end).
-- unfunded_requests counts charges only; list_cost_usd is their list cost (corrections of
-- unfunded entries carry no list cost). flows: the Flow-equivalent for ZenMux accounts.
-- FINAL: each entry once.
SELECT
    account_id,
    plan_family,
    countIf(kind = 'charge') AS unfunded_requests,
    sum(list_cost_usd) AS list_cost_usd,
    sum(flows) AS flows,
    min(started_at) AS first_started_at,
    max(started_at) AS last_started_at
FROM {db:Identifier}.ledger FINAL
WHERE funding = 'unfunded'
  AND started_at >= {start:DateTime64(6, 'UTC')}
  AND started_at < {end:DateTime64(6, 'UTC')}
GROUP BY account_id, plan_family
ORDER BY list_cost_usd DESC, account_id;
