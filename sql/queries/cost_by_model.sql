-- Cost by model: usage, list cost and what was charged, per plan family and model.
--
-- Parameters: {db:Identifier}, {start:DateTime64(6, 'UTC')}, {end:DateTime64(6, 'UTC')}:
-- started_at in [start, end).
-- list_cost_usd = catalog price of the usage; charge_usd = what it cost the customer in
-- dollars (Lilac subscription: list x the live discount; payg and unfunded: list; ZenMux
-- subscription: list, the plan meters it in `flows`). Corrections count with their negative
-- amounts (and zero usage). FINAL: each entry once.
SELECT
    plan_family,
    model,
    countIf(kind = 'charge') AS requests,
    countIf(kind = 'adjustment') AS adjustments,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(images) AS images,
    sum(list_cost_usd) AS list_cost_usd,
    sum(charge_usd) AS charge_usd,
    sum(flows) AS flows
FROM {db:Identifier}.ledger FINAL
WHERE started_at >= {start:DateTime64(6, 'UTC')}
  AND started_at < {end:DateTime64(6, 'UTC')}
GROUP BY plan_family, model
ORDER BY list_cost_usd DESC, plan_family, model;
