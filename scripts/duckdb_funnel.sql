-- diffmill's default funnel recomputed in batch by DuckDB, as one query over the CSV files
-- of a folder (`<input>/bid*.csv`, `impression*.csv`, `click*.csv`, `conversion*.csv`, one
-- partition per file, as diffmill reads them). Run by scripts/duckdb_funnel.py, which sets
-- the variables below from a graph file; the result is the final value of every
-- (window, campaign_id, region) with the six measures, what diffmill's change log sums to.
--
-- Variables (all times in ms): input, window_ms (W), lateness_ms (L), disorder_ms (d),
-- skew_ms (max_future_skew), bid_bound_ms (Bb), click_bound_ms (Bc).
--
-- Rules (docs/semantics.md §0-4), as a batch query can state them:
-- * A line is read by its header; one with a missing, malformed or out-of-range field,
--   too few or too many columns, a zero id, negative money or a string over 23 bytes is
--   left out (diffmill dead-letters it). DuckDB's integer parser also takes a few
--   spellings diffmill rejects ("5.0", "1e3", "0x10", "1_000"); the generator writes none.
-- * Watermark before a record: max ts of the valid records before it in its file, minus d
--   (0 for the first). A record is too late when that is at or past its release time
--   (final_at of ts, of ts + Bc for clicks, of ts + Bb + Bc for bids) and is left out;
--   otherwise it enters at max(ts, watermark). Too-late records cannot move the running
--   max, so including them in it is exact. Records more than max_future_skew ahead of the
--   watermark (dead letters in diffmill, which then do not move it) are counted in
--   `far_future` by scripts/duckdb_funnel.py: when that is not 0 the result is not exact.
-- * The final value of a window is its value at T = end + L - 1. A record counts in its
--   own window when, among the records of its stream with its id that entered by T, none
--   has a greater (ts, payload) (payload: the fields in declared order, strings by
--   length then bytes): the dedup winner at T. A bid that entered after T (attribution
--   only) does not count in its own window.
-- * A child's attribution is read at its own T: the bid (for a conversion: the click,
--   then that click's bid) that is the dedup winner at T, if the child's ts is within
--   the match bound of it; otherwise every dim is `unattributed`.
-- Not modelled: bounded dimensions and the overflow budget (replay graphs declare none,
-- and the budget of 2^46 per partition and window is far beyond generated sums).

WITH
bids_read AS (
    SELECT filename AS part, ordinality AS pos, bid_id AS id, ts::BIGINT AS ts,
           campaign_id, ad_id, publisher_id, trim(region) AS region, trim(device) AS device,
           bid_price_micros AS price
    FROM read_csv(getvariable('input') || '/bid*.csv', header = true, delim = ',',
                  quote = '"', ignore_errors = true, filename = true,
                  types = {'bid_id': 'UBIGINT', 'ts': 'UBIGINT', 'campaign_id': 'UBIGINT',
                           'ad_id': 'UBIGINT', 'publisher_id': 'UBIGINT',
                           'region': 'VARCHAR', 'device': 'VARCHAR',
                           'bid_price_micros': 'BIGINT'}) WITH ORDINALITY
),
impressions_read AS (
    SELECT filename AS part, ordinality AS pos, impression_id AS id, bid_id,
           ts::BIGINT AS ts, cost_micros AS cost
    FROM read_csv(getvariable('input') || '/impression*.csv', header = true, delim = ',',
                  quote = '"', ignore_errors = true, filename = true,
                  types = {'impression_id': 'UBIGINT', 'bid_id': 'UBIGINT',
                           'ts': 'UBIGINT', 'cost_micros': 'BIGINT'}) WITH ORDINALITY
),
clicks_read AS (
    SELECT filename AS part, ordinality AS pos, click_id AS id, bid_id, ts::BIGINT AS ts
    FROM read_csv(getvariable('input') || '/click*.csv', header = true, delim = ',',
                  quote = '"', ignore_errors = true, filename = true,
                  types = {'click_id': 'UBIGINT', 'bid_id': 'UBIGINT',
                           'ts': 'UBIGINT'}) WITH ORDINALITY
),
conversions_read AS (
    SELECT filename AS part, ordinality AS pos, conversion_id AS id, click_id,
           ts::BIGINT AS ts, value_micros AS value
    FROM read_csv(getvariable('input') || '/conversion*.csv', header = true, delim = ',',
                  quote = '"', ignore_errors = true, filename = true,
                  types = {'conversion_id': 'UBIGINT', 'click_id': 'UBIGINT',
                           'ts': 'UBIGINT', 'value_micros': 'BIGINT'}) WITH ORDINALITY
),
-- Valid records: every field present and in range (§0).
bids_valid AS (
    SELECT * FROM bids_read
    WHERE id > 0 AND ts <= 253402300799999 AND campaign_id > 0 AND ad_id > 0
      AND publisher_id > 0 AND region <> '' AND strlen(region) <= 23
      AND device <> '' AND strlen(device) <= 23 AND price >= 0
),
impressions_valid AS (
    SELECT * FROM impressions_read
    WHERE id > 0 AND bid_id > 0 AND ts <= 253402300799999 AND cost >= 0
),
clicks_valid AS (
    SELECT * FROM clicks_read WHERE id > 0 AND bid_id > 0 AND ts <= 253402300799999
),
conversions_valid AS (
    SELECT * FROM conversions_read
    WHERE id > 0 AND click_id > 0 AND ts <= 253402300799999 AND value >= 0
),
-- The partition watermark before each record (§1).
bids_w AS (
    SELECT *, greatest(max(ts) OVER before - getvariable('disorder_ms'), 0) AS w
    FROM bids_valid WINDOW before AS (PARTITION BY part ORDER BY pos
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
impressions_w AS (
    SELECT *, greatest(max(ts) OVER before - getvariable('disorder_ms'), 0) AS w
    FROM impressions_valid WINDOW before AS (PARTITION BY part ORDER BY pos
                                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
clicks_w AS (
    SELECT *, greatest(max(ts) OVER before - getvariable('disorder_ms'), 0) AS w
    FROM clicks_valid WINDOW before AS (PARTITION BY part ORDER BY pos
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
conversions_w AS (
    SELECT *, greatest(max(ts) OVER before - getvariable('disorder_ms'), 0) AS w
    FROM conversions_valid WINDOW before AS (PARTITION BY part ORDER BY pos
                                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
-- Entered records (not too late), each with its entry time and its window's T. Identical
-- copies are one record that entered with the first of them.
bids_in AS (
    SELECT id, ts, campaign_id, ad_id, publisher_id, region, device, price,
           min(greatest(ts, w)) AS entry
    FROM bids_w
    WHERE w IS NULL OR w < final_at(ts + getvariable('bid_bound_ms') + getvariable('click_bound_ms'))
    GROUP BY ALL
),
impressions_in AS (
    SELECT id, bid_id, ts, cost, min(greatest(ts, w)) AS entry
    FROM impressions_w WHERE w IS NULL OR w < final_at(ts) GROUP BY ALL
),
clicks_in AS (
    SELECT id, bid_id, ts, min(greatest(ts, w)) AS entry
    FROM clicks_w WHERE w IS NULL OR w < final_at(ts + getvariable('click_bound_ms')) GROUP BY ALL
),
conversions_in AS (
    SELECT id, click_id, ts, value, min(greatest(ts, w)) AS entry
    FROM conversions_w WHERE w IS NULL OR w < final_at(ts) GROUP BY ALL
),
-- Dedup (§2): a record counts in its own window when it entered by T and no greater
-- record of its id had.
bids_counted AS (
    SELECT ts, campaign_id, region FROM (
        SELECT *, min(entry) OVER (PARTITION BY id ORDER BY ts DESC, campaign_id DESC,
                                   ad_id DESC, publisher_id DESC, strlen(region) DESC,
                                   region DESC, strlen(device) DESC, device DESC, price DESC
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                  AS greater_entry
        FROM bids_in)
    WHERE entry <= final_at(ts) - 1 AND coalesce(greater_entry > final_at(ts) - 1, true)
),
impressions_counted AS (
    SELECT id, bid_id, ts, cost FROM (
        SELECT *, min(entry) OVER (PARTITION BY id ORDER BY ts DESC, bid_id DESC, cost DESC
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                  AS greater_entry
        FROM impressions_in)
    WHERE entry <= final_at(ts) - 1 AND coalesce(greater_entry > final_at(ts) - 1, true)
),
clicks_counted AS (
    SELECT id, bid_id, ts FROM (
        SELECT *, min(entry) OVER (PARTITION BY id ORDER BY ts DESC, bid_id DESC
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                  AS greater_entry
        FROM clicks_in)
    WHERE entry <= final_at(ts) - 1 AND coalesce(greater_entry > final_at(ts) - 1, true)
),
conversions_counted AS (
    SELECT id, click_id, ts, value FROM (
        SELECT *, min(entry) OVER (PARTITION BY id ORDER BY ts DESC, click_id DESC, value DESC
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                  AS greater_entry
        FROM conversions_in)
    WHERE entry <= final_at(ts) - 1 AND coalesce(greater_entry > final_at(ts) - 1, true)
),
-- The dedup winner of each parent id over entry time: from each record's entry until the
-- next record of that id enters, the greatest (ts, payload) entered so far (§2).
bid_winners AS (
    SELECT id, entry AS since,
           coalesce(lead(entry) OVER by_entry, 9223372036854775807) AS until,
           arg_max({'ts': ts, 'campaign_id': campaign_id, 'region': region},
                   (ts, campaign_id, ad_id, publisher_id, strlen(region), region,
                    strlen(device), device, price)) OVER upto AS winner
    FROM bids_in
    WINDOW by_entry AS (PARTITION BY id ORDER BY entry, ts, campaign_id, ad_id,
                        publisher_id, strlen(region), region, strlen(device), device, price),
           upto AS (by_entry ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
click_winners AS (
    SELECT id, entry AS since,
           coalesce(lead(entry) OVER by_entry, 9223372036854775807) AS until,
           arg_max({'ts': ts, 'bid_id': bid_id}, (ts, bid_id)) OVER upto AS winner
    FROM clicks_in
    WINDOW by_entry AS (PARTITION BY id ORDER BY entry, ts, bid_id),
           upto AS (by_entry ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
-- Attribution at each child's T (§3).
impressions_attributed AS (
    SELECT i.ts, i.cost, b.winner AS bid
    FROM impressions_counted i
    LEFT JOIN bid_winners b
        ON b.id = i.bid_id AND b.since <= final_at(i.ts) - 1 AND final_at(i.ts) - 1 < b.until
        AND i.ts <= b.winner.ts + getvariable('bid_bound_ms')
),
clicks_attributed AS (
    SELECT c.ts, b.winner AS bid
    FROM clicks_counted c
    LEFT JOIN bid_winners b
        ON b.id = c.bid_id AND b.since <= final_at(c.ts) - 1 AND final_at(c.ts) - 1 < b.until
        AND c.ts <= b.winner.ts + getvariable('bid_bound_ms')
),
conversions_attributed AS (
    SELECT v.ts, v.value, b.winner AS bid
    FROM conversions_counted v
    LEFT JOIN click_winners k
        ON k.id = v.click_id AND k.since <= final_at(v.ts) - 1 AND final_at(v.ts) - 1 < k.until
        AND v.ts <= k.winner.ts + getvariable('click_bound_ms')
    LEFT JOIN bid_winners b
        ON b.id = k.winner.bid_id AND b.since <= final_at(v.ts) - 1
        AND final_at(v.ts) - 1 < b.until
        AND k.winner.ts <= b.winner.ts + getvariable('bid_bound_ms')
),
-- Contributions (§4): bids, impressions, clicks, conversions, spend, revenue.
contributions AS (
    SELECT ts, campaign_id::VARCHAR AS campaign_id, region,
           1 AS bids, 0 AS impressions, 0 AS clicks, 0 AS conversions,
           0 AS spend_micros, 0 AS revenue_micros
    FROM bids_counted
    UNION ALL
    SELECT ts, coalesce(bid.campaign_id::VARCHAR, 'unattributed'),
           coalesce(bid.region, 'unattributed'), 0, 1, 0, 0, cost, 0
    FROM impressions_attributed
    UNION ALL
    SELECT ts, coalesce(bid.campaign_id::VARCHAR, 'unattributed'),
           coalesce(bid.region, 'unattributed'), 0, 0, 1, 0, 0, 0
    FROM clicks_attributed
    UNION ALL
    SELECT ts, coalesce(bid.campaign_id::VARCHAR, 'unattributed'),
           coalesce(bid.region, 'unattributed'), 0, 0, 0, 1, 0, value
    FROM conversions_attributed
)
SELECT ts - ts % getvariable('window_ms') AS window_start,
       ts - ts % getvariable('window_ms') + getvariable('window_ms') AS window_end,
       campaign_id, region,
       sum(bids)::BIGINT AS bids, sum(impressions)::BIGINT AS impressions,
       sum(clicks)::BIGINT AS clicks, sum(conversions)::BIGINT AS conversions,
       sum(spend_micros)::BIGINT AS spend_micros,
       sum(revenue_micros)::BIGINT AS revenue_micros
FROM contributions
GROUP BY ALL
ORDER BY window_start, campaign_id, region
