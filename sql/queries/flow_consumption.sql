-- ZenMux Flow consumption broken down by model and channel (api | studio).
--
-- Parameters: {db:Identifier}, {account_id:String} ('' = every account),
--             {start:DateTime64(6, 'UTC')}, {end:DateTime64(6, 'UTC')}: started_at in [start, end).
-- flows          = Flows of every ZenMux entry, whoever paid (the Flow-equivalent of usage)
-- flows_debited  = Flows the subscription windows consumed (subscription-funded debit)
-- flows_payg     = Flows of requests paid by a pay-as-you-go key (fallback or by choice)
-- flows_unfunded = Flows of leakage (served after exhaustion with no fallback)
-- Corrections are included with their negative amounts. FINAL: each entry once.
SELECT
    model,
    channel,
    countIf(kind = 'charge') AS requests,
    sum(flows) AS flows,
    sumIf(debit, funding = 'subscription') AS flows_debited,
    -- ledger.flows: the column; a bare `flows` here would be the sum aliased above
    sumIf(ledger.flows, funding = 'payg') AS flows_payg,
    sumIf(ledger.flows, funding = 'unfunded') AS flows_unfunded,
    sum(list_cost_usd) AS list_cost_usd
FROM {db:Identifier}.ledger AS ledger FINAL
WHERE plan_family = 'zenmux'
  AND ({account_id:String} = '' OR account_id = {account_id:String})
  AND started_at >= {start:DateTime64(6, 'UTC')}
  AND started_at < {end:DateTime64(6, 'UTC')}
GROUP BY model, channel
ORDER BY flows DESC, model, channel;
