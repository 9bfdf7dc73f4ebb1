-- Income per payment method (amounts only add up within one currency).
SELECT
  payment_type,
  currency,
  COUNT(*) AS orders,
  SUM(amount) AS income
FROM purchase_details
GROUP BY payment_type, currency
ORDER BY currency, income DESC, payment_type
