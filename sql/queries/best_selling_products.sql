-- Best-selling products: units sold over all order lines, and in how many orders.
SELECT
  product_id,
  name,
  SUM(quantity) AS units_sold,
  COUNT(DISTINCT order_id) AS orders
FROM product_details
GROUP BY product_id, name
ORDER BY units_sold DESC, product_id
LIMIT 10
