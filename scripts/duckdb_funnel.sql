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
--   watermark (dead letters in diffmill, which then do not move it) are not modelled:
--   `scripts/duckdb_funnel.py --check` counts them, and the result is exact when none.
-- * The final value of a window is its value at T = end + L - 1. A record counts in its
--   own window when, among the records of its stream with its id that entered by T, none
--   has a greater (ts, payload) (payload: the fields in declared order, strings by
--   length then bytes): the dedup winner at T. A bid that entered after T (attribution
--   only) does not count in its own window.
-- * A child's attribution is read at its own T: the bid (for a conversion: the click,
--   then that click's bid) that is the dedup winner at T, if the child's ts is within
--   the match bound of it; otherwise every dim is `unattributed`.
-- * Ids whose records all have the same payload (nearly all) are told from the others by
--   a 64-bit hash of the payload: two different payloads of one id with the same hash
--   would be taken as one (odds of 2^-64 per pair of payloads).
-- Not modelled: bounded dimensions and the overflow budget (replay graphs declare none,
-- and the budget of 2^46 per partition and window is far beyond generated sums); other
-- declarations or aggregates (scripts/duckdb_funnel.py refuses such graphs).

WITH
-- Each stream's lines in file order (§0: read by header; a line that does not parse is
-- left out).
bids_read AS (
    SELECT file_index, bid_id AS id, ts::BIGINT AS ts, campaign_id, ad_id, publisher_id,
           trim(region) AS region, trim(device) AS device, bid_price_micros AS price
    FROM read_csv(getvariable('input') || '/bid*.csv', header = true, delim = ',',
                  quote = '"', ignore_errors = true,
                  types = {'bid_id': 'UBIGINT', 'ts': 'UBIGINT', 'campaign_id': 'UBIGINT',
                           'ad_id': 'UBIGINT', 'publisher_id': 'UBIGINT',
                           'region': 'VARCHAR', 'device': 'VARCHAR',
                           'bid_price_micros': 'BIGINT'})
),
impressions_read AS (
    SELECT file_index, impression_id AS id, bid_id, ts::BIGINT AS ts, cost_micros AS cost
    FROM read_csv(getvariable('input') || '/impression*.csv', header = true, delim = ',',
                  quote = '"', ignore_errors = true,
                  types = {'impression_id': 'UBIGINT', 'bid_id': 'UBIGINT',
                           'ts': 'UBIGINT', 'cost_micros': 'BIGINT'})
),
clicks_read AS (
    SELECT file_index, click_id AS id, bid_id, ts::BIGINT AS ts
    FROM read_csv(getvariable('input') || '/click*.csv', header = true, delim = ',',
                  quote = '"', ignore_errors = true,
                  types = {'click_id': 'UBIGINT', 'bid_id': 'UBIGINT', 'ts': 'UBIGINT'})
),
conversions_read AS (
    SELECT file_index, conversion_id AS id, click_id, ts::BIGINT AS ts, value_micros AS value
    FROM read_csv(getvariable('input') || '/conversion*.csv', header = true, delim = ',',
                  quote = '"', ignore_errors = true,
                  types = {'conversion_id': 'UBIGINT', 'click_id': 'UBIGINT',
                           'ts': 'UBIGINT', 'value_micros': 'BIGINT'})
),
bids_valid AS MATERIALIZED (
    SELECT * FROM bids_read
    WHERE id > 0 AND ts <= 253402300799999 AND campaign_id > 0 AND ad_id > 0
      AND publisher_id > 0 AND region <> '' AND strlen(region) <= 23
      AND device <> '' AND strlen(device) <= 23 AND price >= 0
),
impressions_valid AS MATERIALIZED (
    SELECT * FROM impressions_read
    WHERE id > 0 AND bid_id > 0 AND ts <= 253402300799999 AND cost >= 0
),
clicks_valid AS MATERIALIZED (
    SELECT * FROM clicks_read WHERE id > 0 AND bid_id > 0 AND ts <= 253402300799999
),
conversions_valid AS MATERIALIZED (
    SELECT * FROM conversions_read
    WHERE id > 0 AND click_id > 0 AND ts <= 253402300799999 AND value >= 0
),
-- The four streams in one shape, with the watermark (§1): `w` is the max ts of the file's
-- valid records up to and including this one, minus d. Where that max is the record's own
-- ts, the watermark before it is below ts, so the record enters at ts and is not too late
-- either way: using `w` for entry and too-late is exact. The running max is a streaming
-- window in file order (DuckDB keeps insertion order) over each stream's valid records,
-- materialized first so that the CSV is parsed on every thread (a streaming window over
-- the scan itself would parse on one); each file's values are offset by
-- file_index * 2^48 (ts < 2^48) so that no file sees another's.
-- Streams: 0 bids, 1 impressions, 2 clicks, 3 conversions; `parent` is the bid_id or
-- click_id, `amount` the money (price, cost, value), `reach` is added to ts for the
-- release time (§1). A stream's records order by (ts, payload) as (ts, parent,
-- campaign_id, ad_id, publisher_id, length(region), region, length(device), device,
-- amount).
records AS (
    SELECT 0::TINYINT AS stream, id, ts,
           getvariable('bid_bound_ms') + getvariable('click_bound_ms') AS reach,
           NULL::UBIGINT AS parent, campaign_id, ad_id, publisher_id, region, device,
           price AS amount,
           max(file_index::BIGINT * 281474976710656 + ts) OVER (ROWS UNBOUNDED PRECEDING)
               - file_index::BIGINT * 281474976710656 - getvariable('disorder_ms') AS w
    FROM bids_valid
    UNION ALL
    SELECT 1, id, ts, 0, bid_id, NULL, NULL, NULL, NULL, NULL, cost,
           max(file_index::BIGINT * 281474976710656 + ts) OVER (ROWS UNBOUNDED PRECEDING)
               - file_index::BIGINT * 281474976710656 - getvariable('disorder_ms')
    FROM impressions_valid
    UNION ALL
    SELECT 2, id, ts, getvariable('click_bound_ms'), bid_id, NULL, NULL, NULL, NULL, NULL,
           NULL,
           max(file_index::BIGINT * 281474976710656 + ts) OVER (ROWS UNBOUNDED PRECEDING)
               - file_index::BIGINT * 281474976710656 - getvariable('disorder_ms')
    FROM clicks_valid
    UNION ALL
    SELECT 3, id, ts, 0, click_id, NULL, NULL, NULL, NULL, NULL, value,
           max(file_index::BIGINT * 281474976710656 + ts) OVER (ROWS UNBOUNDED PRECEDING)
               - file_index::BIGINT * 281474976710656 - getvariable('disorder_ms')
    FROM conversions_valid
),
-- Entered records (not too late) with their entry time.
entered AS (
    SELECT * EXCLUDE (reach, w), greatest(ts, w) AS entry
    FROM records
    WHERE w < final_at(ts + reach)
),
-- Dedup (§2). Most ids hold one payload: all their records hash alike, and identical
-- copies are one record that entered with the first of them. Only ids with several
-- payloads go through window functions.
groups AS (
    SELECT stream, id, min(entry) AS entry, any_value(ts) AS ts, any_value(parent) AS parent,
           any_value(campaign_id) AS campaign_id, any_value(region) AS region,
           any_value(amount) AS amount, min(h) = max(h) AS single
    FROM (SELECT *, hash(ts, parent, campaign_id, ad_id, publisher_id, region, device, amount)
                        AS h
          FROM entered)
    GROUP BY stream, id
),
several AS (
    SELECT e.stream, e.id, e.ts, e.parent, e.campaign_id, e.ad_id, e.publisher_id, e.region,
           e.device, e.amount, min(e.entry) AS entry
    FROM entered e SEMI JOIN (SELECT stream, id FROM groups WHERE NOT single) g
        ON e.stream = g.stream AND e.id = g.id
    GROUP BY ALL
),
-- A record counts in its own window when it entered by T = final_at(ts) - 1 and no
-- greater record of its id had.
counted AS (
    SELECT stream, ts, parent, campaign_id, region, amount FROM groups
    WHERE single AND entry <= final_at(ts) - 1
    UNION ALL
    SELECT stream, ts, parent, campaign_id, region, amount FROM (
        SELECT *, min(entry) OVER (greater ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                      AS greater_entry
        FROM several
        WINDOW greater AS (PARTITION BY stream, id ORDER BY ts DESC, parent DESC,
                           campaign_id DESC, ad_id DESC, publisher_id DESC,
                           strlen(region) DESC, region DESC, strlen(device) DESC,
                           device DESC, amount DESC))
    WHERE entry <= final_at(ts) - 1 AND coalesce(greater_entry > final_at(ts) - 1, true)
),
-- The dedup winner of each bid and click id over entry time: from `since` until `until`,
-- the greatest record entered so far.
winners AS (
    SELECT stream, id, entry AS since, 9223372036854775807::BIGINT AS until, ts, parent,
           campaign_id, region
    FROM groups WHERE single AND stream IN (0, 2)
    UNION ALL
    SELECT stream, id, entry, coalesce(next_entry, 9223372036854775807::BIGINT),
           winner.ts, winner.parent, winner.campaign_id, winner.region
    FROM (SELECT *, lead(entry) OVER by_entry AS next_entry,
                 arg_max({'ts': ts, 'parent': parent, 'campaign_id': campaign_id,
                          'region': region},
                         (ts, parent, campaign_id, ad_id, publisher_id, strlen(region),
                          region, strlen(device), device, amount))
                     OVER (by_entry ROWS UNBOUNDED PRECEDING) AS winner
          FROM several WHERE stream IN (0, 2)
          WINDOW by_entry AS (PARTITION BY stream, id ORDER BY entry, ts, parent,
                              campaign_id, ad_id, publisher_id, strlen(region), region,
                              strlen(device), device, amount))
),
bid_winners AS (SELECT * FROM winners WHERE stream = 0),
click_winners AS (SELECT * FROM winners WHERE stream = 2),
-- Attribution of each counted child at its T (§3): a conversion's winning click, if within
-- the click bound; then the winning bid of the impression, the click, or that click.
children AS (
    SELECT c.stream, c.ts, c.amount, final_at(c.ts) - 1 AS t,
           CASE c.stream WHEN 3 THEN k.ts ELSE c.ts END AS bid_child_ts,
           CASE c.stream WHEN 3 THEN k.parent ELSE c.parent END AS bid_id
    FROM counted c
    LEFT JOIN click_winners k
        ON c.stream = 3 AND k.id = c.parent
        AND k.since <= final_at(c.ts) - 1 AND final_at(c.ts) - 1 < k.until
        AND c.ts <= k.ts + getvariable('click_bound_ms')
    WHERE c.stream <> 0
),
attributed AS (
    SELECT c.stream, c.ts, c.amount, b.campaign_id, b.region
    FROM children c
    LEFT JOIN bid_winners b
        ON b.id = c.bid_id AND b.since <= c.t AND c.t < b.until
        AND c.bid_child_ts <= b.ts + getvariable('bid_bound_ms')
),
-- Contributions (§4).
contributions AS (
    SELECT ts, campaign_id::VARCHAR AS campaign_id, region,
           1 AS bids, 0 AS impressions, 0 AS clicks, 0 AS conversions,
           0 AS spend_micros, 0 AS revenue_micros
    FROM counted WHERE stream = 0
    UNION ALL
    SELECT ts, coalesce(campaign_id::VARCHAR, 'unattributed'),
           coalesce(region, 'unattributed'),
           0, (stream = 1)::INT, (stream = 2)::INT,
           (stream = 3)::INT,
           CASE stream WHEN 1 THEN amount ELSE 0 END,
           CASE stream WHEN 3 THEN amount ELSE 0 END
    FROM attributed
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
