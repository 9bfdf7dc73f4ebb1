-- The latest orders with where they ship. Joining on the partition columns too lets each side
-- read matching partitions only.
SELECT
  o.order_id,
  o.customer_id,
  o.order_timestamp,
  o.status,
  s.country,
  s.state,
  s.city,
  s.street,
  s.zip
FROM orders AS o
JOIN shipping_addresses AS s
  ON s.customer_id = o.customer_id
  AND s.order_id = o.order_id
  AND s.year = o.year AND s.month = o.month AND s.day = o.day
ORDER BY o.order_timestamp DESC, o.order_id
LIMIT 20
