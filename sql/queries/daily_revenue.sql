-- Daily revenue over a date range: the last 7 days that have orders. For a fixed range, filter
-- on the partition columns too (for example year = '2024' AND month = '06'), so that only those
-- folders are read.
WITH latest AS (
  SELECT MAX(order_date) AS last_day FROM orders
)
SELECT
  o.order_date,
  p.currency,
  COUNT(*) AS orders,
  SUM(p.amount) AS revenue
FROM orders AS o
JOIN purchase_details AS p
  ON p.customer_id = o.customer_id
  AND p.order_id = o.order_id
  AND p.year = o.year AND p.month = o.month AND p.day = o.day
CROSS JOIN latest
WHERE o.order_date > latest.last_day - INTERVAL '7' DAY
GROUP BY o.order_date, p.currency
ORDER BY o.order_date, p.currency
