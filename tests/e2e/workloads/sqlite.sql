-- SPDX-License-Identifier: MIT
-- sqlite.sql - allocation-heavy, deterministic workload for real-programs.sh:
-- run by the sqlite3 shell on :memory:. Tables with indexes, ~80k rows
-- inserted in transactions by recursive CTEs, then aggregates and joins.
.headers on
.mode list
PRAGMA cache_size = -65536;
CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region INTEGER NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, amount INTEGER NOT NULL, note TEXT);
CREATE INDEX orders_customer ON orders (customer);
CREATE INDEX orders_amount ON orders (amount);
CREATE INDEX customer_name ON customer (name);

BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8000)
INSERT INTO customer (id, name, region)
SELECT i, printf('cust-%05d-%s', (i * 7919) % 8000, substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26, 1 + i % 7)), i % 17
FROM n;
COMMIT;

BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
INSERT INTO orders (id, customer, amount, note)
SELECT i, 1 + (i * 2654435761) % 8000, (i * 48271) % 100000, hex(zeroblob(i % 40)) || i
FROM n;
COMMIT;

BEGIN;
WITH RECURSIVE n(i) AS (SELECT 40001 UNION ALL SELECT i + 1 FROM n WHERE i < 80000)
INSERT INTO orders (id, customer, amount, note)
SELECT i, 1 + (i * 40503) % 8000, (i * 16807) % 100000, printf('%.*c', i % 60, 'x')
FROM n;
COMMIT;

UPDATE orders SET note = upper(note) || '!' WHERE amount % 5 = 0;
DELETE FROM orders WHERE amount % 11 = 3;

SELECT count(*) AS orders, sum(amount) AS total, min(amount) AS lo, max(amount) AS hi,
	sum(length(note)) AS note_bytes FROM orders;

SELECT c.region, count(*) AS n, sum(o.amount) AS total, round(avg(o.amount), 3) AS mean
FROM orders o JOIN customer c ON c.id = o.customer
GROUP BY c.region ORDER BY c.region;

SELECT c.name, count(*) AS n, sum(o.amount) AS total
FROM customer c JOIN orders o ON o.customer = c.id
GROUP BY c.id ORDER BY total DESC, c.name LIMIT 15;

SELECT substr(name, 12) AS suffix, count(DISTINCT region) AS regions, count(*) AS n
FROM customer GROUP BY suffix ORDER BY n DESC, suffix LIMIT 10;

SELECT group_concat(id, ',') AS ids FROM
	(SELECT id FROM orders WHERE amount BETWEEN 5000 AND 5100 ORDER BY id);

SELECT a.region, b.region, count(*) AS pairs
FROM customer a JOIN customer b ON a.region = b.region AND a.id < b.id AND substr(a.name, 6, 2) = substr(b.name, 6, 2)
GROUP BY a.region, b.region ORDER BY pairs DESC, a.region LIMIT 5;

CREATE TABLE summary AS
SELECT customer, count(*) AS n, group_concat(amount, ' ') AS amounts
FROM orders GROUP BY customer;
SELECT count(*) AS customers, sum(length(amounts)) AS amount_text, max(n) AS most FROM summary;

SELECT count(*) AS big_spenders FROM summary
WHERE n > (SELECT avg(n) FROM summary) AND customer IN (SELECT id FROM customer WHERE region < 9);
