-- Funding split: who paid for the usage, per plan family.
--
-- Parameters: {db:Identifier}, {account_id:String} ('' = every account),
--             {start:DateTime64(6, 'UTC')}, {end:DateTime64(6, 'UTC')}: started_at in [start, end).
-- source:
--   subscription  - debited to the plan's windows
--   payg_fallback - the window was exhausted; paid by the account's fallback key
--                   (funding = payg with fallback_key_id set)
--   payg_choice   - sent in payg billing mode by the caller (funding = payg, no fallback key)
--   unfunded      - leakage: served after exhaustion with no fallback (charge = list, no debit)
-- debit is in the account's unit (flows for ZenMux, usd for Lilac), hence per plan family.
-- FINAL: each entry once.
SELECT
    plan_family,
    multiIf(
        funding = 'subscription', 'subscription',
        funding = 'payg' AND fallback_key_id IS NOT NULL, 'payg_fallback',
        funding = 'payg', 'payg_choice',
        'unfunded'
    ) AS source,
    countIf(kind = 'charge') AS requests,
    sum(list_cost_usd) AS list_cost_usd,
    sum(charge_usd) AS charge_usd,
    sum(flows) AS flows,
    sum(debit) AS debit
FROM {db:Identifier}.ledger FINAL
WHERE ({account_id:String} = '' OR account_id = {account_id:String})
  AND started_at >= {start:DateTime64(6, 'UTC')}
  AND started_at < {end:DateTime64(6, 'UTC')}
GROUP BY plan_family, source
ORDER BY plan_family, indexOf(['subscription', 'payg_fallback', 'payg_choice', 'unfunded'], source);
