-- Top customers by amount spent (per currency), with their order count.
SELECT
  customer_id,
  currency,
  COUNT(*) AS orders,
  SUM(amount) AS total_spent
FROM purchase_details
GROUP BY customer_id, currency
ORDER BY total_spent DESC, customer_id, currency
LIMIT 10
