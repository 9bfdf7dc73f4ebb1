-- Sales per shipping country and currency: the 20 largest (amounts compare only within a currency).
SELECT
  s.country,
  p.currency,
  COUNT(*) AS orders,
  SUM(p.amount) AS sales
FROM shipping_addresses AS s
JOIN purchase_details AS p
  ON p.customer_id = s.customer_id
  AND p.order_id = s.order_id
  AND p.year = s.year AND p.month = s.month AND p.day = s.day
GROUP BY s.country, p.currency
ORDER BY sales DESC, s.country, p.currency
LIMIT 20
