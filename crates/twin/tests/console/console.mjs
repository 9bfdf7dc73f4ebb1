// The web console in a real browser (Debian's Chromium, driven by playwright-core), against a
// running twin: the page loads with the key from the address's fragment, the counts move while
// orders arrive, a query from sql/queries runs and draws its table and chart, a failure is viewed
// and redriven. Run by crates/twin/tests/console.rs:
//   node console.mjs <console url> <api url> <api key> <screenshot.png>
import { chromium } from "playwright-core";

const [consoleUrl, api, key, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const problems = [];
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
// (The refused COPY below answers 400 on purpose; the browser logs that as an error.)
let refusalExpected = false;
page.on("console", (message) => {
  const expected = refusalExpected && message.text().includes("status of 400");
  if (message.type() === "error" && !expected) problems.push(`console: ${message.text()}`);
});
page.on("request", (request) => {
  const url = new URL(request.url());
  if (!["127.0.0.1", "localhost"].includes(url.hostname)) problems.push(`a request left the machine: ${url}`);
});

const step = (what) => console.log(`console test: ${what}`);
const expect = (condition, what) => { if (!condition) throw new Error(`expected: ${what}`); };
const itemsShown = async () => Number((await page.locator("#dynamodb-items").textContent()).replace(/\D/g, "") || 0);

async function send(orders) {
  const response = await fetch(`${api}/v1/orders/batch`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({ orders }),
  });
  expect(response.status === 200, `the batch is accepted (got ${response.status})`);
}
const order = (i, date = "2024-06-08T10:00:00Z") => ({
  customer_id: `console-${i % 7}`, order_id: `console-order-${i}`, order_date: date, status: "paid",
  shipping_address: { street: "1 Main St", city: "Lisbon", state: "Lisboa", zip: "1000-001", country: "Portugal" },
  purchase_details: { payment_type: "cash", amount: 10.5, currency: "EUR", instalments: 1 },
  product_details: [{ product_id: `p${i % 3}`, name: `Thing ${i % 3}`, quantity: 1 + (i % 4), item_details: { color: "Navy", size: "M" } }],
});

try {
  step("load");
  await page.goto(consoleUrl);
  expect(!(new URL(page.url()).hash.includes("key")), "the key leaves the address bar");
  await page.waitForFunction(() => document.querySelector("#summary").textContent.includes("running"));
  const before = await itemsShown();

  step("the counts move while orders arrive");
  await send(Array.from({ length: 50 }, (_, i) => order(i)));
  // An order the schema takes and the rules refuse: a failure in every table's error output.
  await send([order(999, "2024-02-30T10:00:00Z")]);
  await page.waitForFunction((b) => Number(document.querySelector("#dynamodb-items").textContent.replace(/\D/g, "")) >= b + 50, before, { timeout: 60000 });
  await page.waitForFunction(() => document.querySelector('[data-table="orders"] .err').textContent.includes("processing-failed"), null, { timeout: 60000 });
  expect(await page.locator('[data-shard]').count() >= 1, "the stream's shards are drawn");

  step("look up a customer in DynamoDB");
  await page.click('nav button[data-tab="dynamodb"]');
  await page.fill("#customer-id", "console-3");
  await page.click("#lookup button");
  await page.waitForFunction(() => /\d+ orders/.test(document.querySelector("#lookup-result").textContent));
  expect((await page.locator("#lookup-result pre").count()) > 0, "the customer's orders are shown");

  step("run a query from sql/queries");
  await page.click('nav button[data-tab="sql"]');
  await page.waitForFunction(() => document.querySelectorAll("#query-list option").length > 1);
  await page.selectOption("#query-list", "best_selling_products");
  // Firehose writes a table when its buffer is due: run until the rows are there.
  let rows = 0;
  for (let attempt = 0; attempt < 60 && rows === 0; attempt++) {
    await page.click("#run-sql");
    await page.waitForSelector("#sql-rows, #sql-error:not(:empty)");
    rows = Number(((await page.locator("#sql-rows").textContent().catch(() => "0")) || "0").replace(/\D/g, ""));
    if (rows === 0) await page.waitForTimeout(1000);
  }
  expect(rows > 0, "the query has rows");
  expect(await page.locator("#chart svg rect").count() > 0, "a chart is drawn");
  expect(await page.locator("#csv").isVisible(), "the CSV can be downloaded");
  const download = page.waitForEvent("download");
  await page.click("#csv");
  const csv = await (await download).createReadStream();
  let text = "";
  for await (const chunk of csv) text += chunk;
  expect(text.startsWith("product_id,name,units_sold,orders\n"), `a CSV with the query's header (got ${text.slice(0, 60)})`);
  step("a free query; one that writes is refused");
  await page.selectOption("#query-list", "");
  await page.fill("#sql-text", "SELECT count(*) AS n FROM orders");
  await page.click("#run-sql");
  await page.waitForSelector("#sql-rows");
  await page.fill("#sql-text", "COPY (SELECT 1) TO '/tmp/console-test.csv'");
  refusalExpected = true;
  await page.click("#run-sql");
  await page.waitForFunction(() => document.querySelector("#sql-error").textContent.length > 0);
  refusalExpected = false;

  step("view and redrive a failure");
  await page.click('nav button[data-tab="failures"]');
  await page.waitForFunction(() => /\d+\+? objects/.test((document.querySelector("#failure-total") || {}).textContent || ""));
  await page.locator("#failure-list a").first().click();
  await page.waitForFunction(() => document.querySelector("#failure-object").textContent.includes("rawData"));
  await page.click("#redrive");
  await page.waitForFunction(() => /failed again/.test(document.querySelector("#redrive-result").textContent), null, { timeout: 60000 });
  const report = await page.locator("#redrive-result").textContent();
  // The refused order is still invalid: it fails again in each of the four tables.
  expect(report.includes("4 failed again"), `the redrive report (got ${report})`);

  await page.click('nav button[data-tab="pipeline"]');
  await page.screenshot({ path: screenshot, fullPage: true });
  step(`screenshot in ${screenshot}`);
  expect(problems.length === 0, `no errors in the page: ${problems.join("; ")}`);
} catch (error) {
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  console.error(`console test failed: ${error.message}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
