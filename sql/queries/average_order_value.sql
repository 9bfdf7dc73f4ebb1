-- Average order value per currency: orders, their total and the mean amount per order.
SELECT
  currency,
  COUNT(*) AS orders,
  SUM(amount) AS total_amount,
  ROUND(SUM(amount) / COUNT(*), 2) AS average_order_value
FROM purchase_details
GROUP BY currency
ORDER BY currency
