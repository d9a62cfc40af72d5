-- Top accounts by usage at list price (comparable across ZenMux and Lilac).
--
-- Parameters: {db:Identifier}, {start:DateTime64(6, 'UTC')}, {end:DateTime64(6, 'UTC')}
-- (started_at in [start, end)), {limit:UInt32}.
-- list_cost_usd = usage at list price; charge_usd = dollars charged (see cost_by_model.sql);
-- subscription_debit = what the plan's windows consumed (flows or usd, see plan_family);
-- payg_usd / unfunded_usd = dollars billed to payg keys / leaked. Ties break on account_id.
-- FINAL: each entry once.
SELECT
    account_id,
    any(plan_family) AS plan_family,
    countIf(kind = 'charge') AS requests,
    sum(list_cost_usd) AS list_cost_usd,
    sum(charge_usd) AS charge_usd,
    sum(flows) AS flows,
    sumIf(debit, funding = 'subscription') AS subscription_debit,
    -- ledger.charge_usd: the column; a bare `charge_usd` here would be the sum above
    sumIf(ledger.charge_usd, funding = 'payg') AS payg_usd,
    sumIf(ledger.charge_usd, funding = 'unfunded') AS unfunded_usd
FROM {db:Identifier}.ledger AS ledger FINAL
WHERE started_at >= {start:DateTime64(6, 'UTC')}
  AND started_at < {end:DateTime64(6, 'UTC')}
GROUP BY account_id
ORDER BY list_cost_usd DESC, account_id
LIMIT {limit:UInt32};
