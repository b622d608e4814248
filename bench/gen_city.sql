-- The benchmark city: 20,000 grids in 50 streets and 2,000 communities on a 40 x 40 km
-- square of the Pearl River Delta centred on (113.5 E, 22.7 N), the sea to the south; then
-- buildings, households, residents, party-mass stations, shelters and grid teams, all in
-- SQL (generate_series), with the shares of gridgis/demo (population.py, people.py).
--
-- Run by bench/gen_city.py, which sets the parameters as settings of the session:
--   bench.buildings   buildings to make (about; 1,000,000 at scale 1)
--   bench.residents   residents to make (about; 5,000,000 at scale 1)
--   bench.seed        setseed() value in [-1, 1]: the same seed gives the same city
-- Each "-- step:" block is run and timed on its own (autocommit). Geometry is built in UTM
-- zone 49N (EPSG:32649, metres) and stored in EPSG:4326. Grids are a jittered 125 x 160
-- lattice (cells about 320 x 250 m) whose edges carry 7 wiggled vertices each; every edge is
-- made once and shared by the two grids beside it, so grids tile their communities, streets
-- and the district exactly. The whole city is wiped first (every gridgis table).

-- step: reset
-- random() in one order, so the seed holds: no parallel plans, every scan from the start
SET max_parallel_workers_per_gather = 0;
SET synchronize_seqscans = off;
TRUNCATE checklist_event, checklist_item, checklist, outbox, alert, warning_area, warning,
         resident_event, resident, station, shelter, building, app_user_grid, app_user_unit,
         grid, admin_unit, auth_token, audit_log, app_user RESTART IDENTITY CASCADE;
DROP TABLE IF EXISTS bench_node, bench_edge, bench_cell, bench_community, bench_bldg,
                     bench_household, bench_index;
SELECT setseed(current_setting('bench.seed')::float8);

-- step: lattice
CREATE UNLOGGED TABLE bench_node AS
WITH c AS (
    SELECT ST_X(p) AS cx, ST_Y(p) AS cy
    FROM (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(113.5, 22.7), 4326), 32649) AS p) s
)
SELECT i, j,
       c.cx + (i - 62.5) * 320 + CASE WHEN i IN (0, 125) THEN 0
                                      ELSE (random() - 0.5) * 128 END AS x,
       c.cy + (j - 80) * 250 + CASE WHEN j IN (0, 160) THEN 0
                                    ELSE (random() - 0.5) * 100 END AS y
FROM c, generate_series(0, 125) i, generate_series(0, 160) j
ORDER BY i, j;
ALTER TABLE bench_node ADD PRIMARY KEY (i, j);
-- Each edge once, from its lower node to its higher one; end points exactly the nodes.
CREATE UNLOGGED TABLE bench_edge AS
SELECT 'h' AS dir, a.i, a.j, ST_MakeLine(ARRAY(
    SELECT ST_MakePoint(
        CASE t WHEN 0 THEN a.x WHEN 8 THEN b.x ELSE a.x + (b.x - a.x) * t / 8.0 END,
        CASE t WHEN 0 THEN a.y WHEN 8 THEN b.y
               ELSE a.y + (b.y - a.y) * t / 8.0
                    + CASE WHEN a.j IN (0, 160) THEN 0 ELSE (random() - 0.5) * 16 END END)
    FROM generate_series(0, 8) t ORDER BY t)) AS line
FROM bench_node a JOIN bench_node b ON b.i = a.i + 1 AND b.j = a.j
UNION ALL
SELECT 'v', a.i, a.j, ST_MakeLine(ARRAY(
    SELECT ST_MakePoint(
        CASE t WHEN 0 THEN a.x WHEN 8 THEN b.x
               ELSE a.x + (b.x - a.x) * t / 8.0
                    + CASE WHEN a.i IN (0, 125) THEN 0 ELSE (random() - 0.5) * 20 END END,
        CASE t WHEN 0 THEN a.y WHEN 8 THEN b.y ELSE a.y + (b.y - a.y) * t / 8.0 END)
    FROM generate_series(0, 8) t ORDER BY t))
FROM bench_node a JOIN bench_node b ON b.i = a.i AND b.j = a.j + 1;
ALTER TABLE bench_edge ADD PRIMARY KEY (dir, i, j);

-- step: cells
-- A cell: its lattice place, polygon, corners (lon/lat, for drawing points inside), its
-- street (5 x 10 blocks of 25 x 16 cells), community (blocks of 5 x 2 cells) and kind.
CREATE UNLOGGED TABLE bench_cell AS
WITH cell AS (
    SELECT b.i, b.j,
           ST_Transform(ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[
               b.line, r.line, ST_Reverse(t.line), ST_Reverse(l.line)])), 32649), 4326)
               AS boundary,
           sqrt(power((b.i + 0.5 - 62.5) * 0.32, 2) + power((b.j + 0.5 - 80) * 0.25, 2)) AS km,
           random() AS u_port, random() AS u_kind, random() AS u_low
    FROM bench_edge b
    JOIN bench_edge r ON r.dir = 'v' AND r.i = b.i + 1 AND r.j = b.j
    JOIN bench_edge t ON t.dir = 'h' AND t.i = b.i AND t.j = b.j + 1
    JOIN bench_edge l ON l.dir = 'v' AND l.i = b.i AND l.j = b.j
    WHERE b.dir = 'h' AND b.j < 160
)
SELECT c.i, c.j, c.boundary,
       c.i / 25 + 5 * (c.j / 16) AS street,
       (c.i % 25) / 5 + 5 * ((c.j % 16) / 2) AS community,
       c.i % 5 + 5 * (c.j % 2) AS seq,
       CASE WHEN c.j < 6 AND c.u_port < 0.3 THEN 'port'
            WHEN c.km < 5 THEN CASE WHEN c.u_kind < 0.3 THEN 'commercial'
                                    WHEN c.u_kind < 0.6 THEN 'mixed' ELSE 'residential' END
            WHEN c.km < 12 THEN CASE WHEN c.u_kind < 0.55 THEN 'residential'
                                     WHEN c.u_kind < 0.70 THEN 'mixed'
                                     WHEN c.u_kind < 0.85 THEN 'industrial'
                                     WHEN c.u_kind < 0.90 THEN 'commercial' ELSE 'village' END
            ELSE CASE WHEN c.u_kind < 0.45 THEN 'village' WHEN c.u_kind < 0.65 THEN 'industrial'
                      WHEN c.u_kind < 0.80 THEN 'ecological' ELSE 'residential' END
       END AS kind,
       c.u_low < 0.25 AS low_lying,          -- a quarter of grids lie low (demo: 25 %)
       c.j < 4 AS coastal,                   -- within 1 km of the sea, the south edge
       ST_X(ST_Transform(ST_SetSRID(ST_MakePoint(na.x, na.y), 32649), 4326)) AS ax,
       ST_Y(ST_Transform(ST_SetSRID(ST_MakePoint(na.x, na.y), 32649), 4326)) AS ay,
       ST_X(ST_Transform(ST_SetSRID(ST_MakePoint(nb.x, nb.y), 32649), 4326)) AS bx,
       ST_Y(ST_Transform(ST_SetSRID(ST_MakePoint(nb.x, nb.y), 32649), 4326)) AS by_,
       ST_X(ST_Transform(ST_SetSRID(ST_MakePoint(nc.x, nc.y), 32649), 4326)) AS cx,
       ST_Y(ST_Transform(ST_SetSRID(ST_MakePoint(nc.x, nc.y), 32649), 4326)) AS cy,
       ST_X(ST_Transform(ST_SetSRID(ST_MakePoint(nd.x, nd.y), 32649), 4326)) AS dx,
       ST_Y(ST_Transform(ST_SetSRID(ST_MakePoint(nd.x, nd.y), 32649), 4326)) AS dy
FROM cell c
JOIN bench_node na ON na.i = c.i AND na.j = c.j
JOIN bench_node nb ON nb.i = c.i + 1 AND nb.j = c.j
JOIN bench_node nc ON nc.i = c.i + 1 AND nc.j = c.j + 1
JOIN bench_node nd ON nd.i = c.i AND nd.j = c.j + 1;
-- Communities: a village (村, codes 200+) where most of its grids are villages.
CREATE UNLOGGED TABLE bench_community AS
SELECT street, community,
       CASE WHEN count(*) FILTER (WHERE kind = 'village') * 2 > count(*) THEN 'village'
            ELSE 'community' END AS kind,
       ST_Multi(ST_Union(boundary)) AS boundary
FROM bench_cell GROUP BY street, community;

-- step: admin units and grids
INSERT INTO admin_unit (code, name, name_en, level, kind, parent_id, boundary)
SELECT '440100', '基准市', 'Bench City', 'district', 'district', NULL,
       ST_Multi(ST_Union(boundary))
FROM bench_community;
INSERT INTO admin_unit (code, name, name_en, level, kind, parent_id, boundary)
SELECT '440100' || lpad((street + 1)::text, 3, '0'), '第' || (street + 1) || '街道',
       'Street ' || (street + 1), 'street', 'street',
       (SELECT id FROM admin_unit WHERE code = '440100'), ST_Multi(ST_Union(boundary))
FROM bench_community GROUP BY street ORDER BY street;
INSERT INTO admin_unit (code, name, name_en, level, kind, parent_id, boundary)
SELECT s.code || lpad((c.community + 1 + CASE c.kind WHEN 'village' THEN 200 ELSE 0 END)::text,
                      3, '0'),
       s.name || '第' || (c.community + 1) || CASE c.kind WHEN 'village' THEN '村' ELSE '社区' END,
       s.name_en || ' ' || initcap(c.kind) || ' ' || (c.community + 1),
       'community', c.kind, s.id, c.boundary
FROM bench_community c
JOIN admin_unit s ON s.code = '440100' || lpad((c.street + 1)::text, 3, '0')
ORDER BY c.street, c.community;
ALTER TABLE bench_community ADD COLUMN admin_unit_id int;
UPDATE bench_community c SET admin_unit_id = a.id
FROM admin_unit s, admin_unit a
WHERE s.code = '440100' || lpad((c.street + 1)::text, 3, '0') AND a.parent_id = s.id
  AND a.code = s.code || lpad((c.community + 1 + CASE c.kind WHEN 'village' THEN 200 ELSE 0
                                                   END)::text, 3, '0');
ALTER TABLE bench_cell ADD COLUMN grid_id int;
INSERT INTO grid (code, name, community_id, kind, boundary)
SELECT a.code || lpad((c.seq + 1)::text, 3, '0'), a.name || (c.seq + 1) || '网格',
       a.id, c.kind, ST_Multi(c.boundary)
FROM bench_cell c
JOIN bench_community m ON m.street = c.street AND m.community = c.community
JOIN admin_unit a ON a.id = m.admin_unit_id
ORDER BY a.code, c.seq;
UPDATE bench_cell c SET grid_id = g.id
FROM bench_community m, admin_unit a, grid g
WHERE m.street = c.street AND m.community = c.community AND a.id = m.admin_unit_id
  AND g.code = a.code || lpad((c.seq + 1)::text, 3, '0');
ALTER TABLE bench_cell ADD PRIMARY KEY (grid_id);

-- step: buildings (staging)
-- How many buildings per grid (weights by kind, demo BUILDING_WEIGHT; grids are all about
-- the same size), then each building: a point inside its grid (bilinear in the cell's
-- corners; the few that would fall outside a wiggled edge are dropped), use (demo
-- USE_SHARES), floors (FLOORS), risk flags (draw_risk_flags) and households to hold.
CREATE UNLOGGED TABLE bench_bldg AS
WITH weight(kind, w) AS (VALUES ('residential', 1.0), ('village', 1.4), ('commercial', 0.6),
    ('industrial', 0.5), ('mixed', 0.9), ('port', 0.3), ('ecological', 0.15)
), per_grid AS (
    SELECT c.grid_id, c.w * (0.6 + 0.8 * random()) AS w FROM (
        SELECT c.grid_id, w.w FROM bench_cell c JOIN weight w USING (kind) ORDER BY c.grid_id) c
), counted AS (
    SELECT grid_id, 1 + floor((current_setting('bench.buildings')::int - 20000)
                              * w / sum(w) OVER () + random())::int AS n
    FROM per_grid
), drawn AS (
    SELECT n.grid_id, s.seq, 0.06 + 0.88 * random() AS u, 0.06 + 0.88 * random() AS v,
           random() AS r_use, random() AS r_floor, random() AS r_dil, random() AS r_shed,
           random() AS r_temp, random() AS r_low, random() AS r_coast, random() AS r_geo,
           random() AS r_fp
    FROM counted n CROSS JOIN LATERAL generate_series(1, n.n) s(seq)
    ORDER BY n.grid_id, s.seq
), placed AS (
    SELECT d.*, c.kind, c.low_lying, c.coastal,
           ST_SetSRID(ST_MakePoint(
               (1 - d.u) * (1 - d.v) * c.ax + d.u * (1 - d.v) * c.bx + d.u * d.v * c.cx
                   + (1 - d.u) * d.v * c.dx,
               (1 - d.u) * (1 - d.v) * c.ay + d.u * (1 - d.v) * c.by_ + d.u * d.v * c.cy
                   + (1 - d.u) * d.v * c.dy), 4326) AS location
    FROM drawn d JOIN bench_cell c USING (grid_id)
), shares(kind, use, share) AS (VALUES
    ('residential', 'residential', 0.78), ('residential', 'commercial', 0.07),
    ('residential', 'public', 0.05), ('residential', 'school', 0.03),
    ('residential', 'hospital', 0.01), ('residential', 'mixed', 0.06),
    ('village', 'residential', 0.86), ('village', 'commercial', 0.04),
    ('village', 'industrial', 0.04), ('village', 'public', 0.03), ('village', 'school', 0.02),
    ('village', 'mixed', 0.01),
    ('commercial', 'residential', 0.20), ('commercial', 'commercial', 0.55),
    ('commercial', 'industrial', 0.02), ('commercial', 'public', 0.08),
    ('commercial', 'school', 0.02), ('commercial', 'hospital', 0.02),
    ('commercial', 'mixed', 0.11),
    ('industrial', 'residential', 0.10), ('industrial', 'commercial', 0.05),
    ('industrial', 'industrial', 0.78), ('industrial', 'public', 0.03),
    ('industrial', 'school', 0.01), ('industrial', 'mixed', 0.03),
    ('mixed', 'residential', 0.50), ('mixed', 'commercial', 0.20),
    ('mixed', 'industrial', 0.08), ('mixed', 'public', 0.07), ('mixed', 'school', 0.03),
    ('mixed', 'hospital', 0.02), ('mixed', 'mixed', 0.10),
    ('port', 'residential', 0.05), ('port', 'commercial', 0.10), ('port', 'industrial', 0.80),
    ('port', 'public', 0.03), ('port', 'mixed', 0.02),
    ('ecological', 'residential', 0.60), ('ecological', 'commercial', 0.05),
    ('ecological', 'industrial', 0.05), ('ecological', 'public', 0.25),
    ('ecological', 'school', 0.03), ('ecological', 'mixed', 0.02)
), bands AS (
    SELECT kind, use, sum(share) OVER (PARTITION BY kind ORDER BY use) AS upto,
           sum(share) OVER (PARTITION BY kind) AS total
    FROM shares
), used AS (
    SELECT p.*, coalesce((SELECT b.use FROM bands b WHERE b.kind = p.kind
                          AND b.upto > p.r_use * b.total ORDER BY b.upto LIMIT 1),
                         'residential') AS use
    FROM placed p
), size(use, low, high, per_floor, half_m) AS (VALUES
    ('residential', 6, 33, 8.0, 14), ('commercial', 2, 30, 0.3, 20),
    ('industrial', 1, 4, 0.6, 30), ('public', 1, 5, 0.1, 14), ('school', 3, 6, 0.05, 35),
    ('hospital', 4, 20, 0.05, 30), ('mixed', 4, 25, 4.0, 18)
)
SELECT row_number() OVER (ORDER BY u.grid_id, u.seq)::int AS id, u.grid_id, u.seq, u.use,
       CASE WHEN u.kind = 'village' THEN 2 + floor(u.r_floor * 4)::int
            ELSE least(z.low + floor(ln(1 - u.r_floor) / ln(1 - 0.12))::int, z.high) END
           AS floors,
       array_remove(ARRAY[
           CASE WHEN u.r_dil < CASE WHEN u.kind = 'village' THEN 0.05 ELSE 0.006 END
                THEN 'dilapidated' END,
           CASE WHEN u.use = 'industrial' AND u.r_shed < CASE WHEN u.kind IN ('industrial', 'port')
                THEN 0.10 ELSE 0.02 END THEN 'work_shed' END,
           CASE WHEN u.r_temp < CASE WHEN u.kind IN ('industrial', 'port') THEN 0.05 ELSE 0.012
                END THEN 'temporary' END,
           CASE WHEN u.low_lying AND u.r_low < 0.5 THEN 'low_lying' END,
           CASE WHEN u.coastal AND u.r_coast < 0.6 THEN 'coastal' END,
           CASE WHEN u.r_geo < CASE WHEN u.kind = 'ecological' THEN 0.15 ELSE 0.003 END
                THEN 'geohazard' END], NULL) AS risk_flags,
       z.per_floor, z.half_m * (0.6 + 0.8 * u.r_fp) AS half_m, u.location
FROM used u
JOIN size z USING (use)
JOIN bench_cell c USING (grid_id)
JOIN grid g ON g.id = u.grid_id
WHERE ST_Covers(g.boundary, u.location)
ORDER BY u.grid_id, u.seq;
ALTER TABLE bench_bldg ADD PRIMARY KEY (id);

-- step: households (staging)
-- Households per building by dwellers (people per floor by use x floors; a work shed houses
-- its workers, demo residents_per_building), sized 1-6 (mean 2.5, demo ~2.6), each with one
-- residency (the city profile of gridgis/demo/load.py); resident ids numbered in order.
CREATE UNLOGGED TABLE bench_household AS
WITH weight AS (
    SELECT id, CASE WHEN 'work_shed' = ANY(risk_flags) THEN 10.0 ELSE per_floor * floors END
               AS w
    FROM bench_bldg
), counted AS (
    SELECT id, floor(current_setting('bench.residents')::int / 2.5 * w / sum(w) OVER ()
                     + random())::int AS n
    FROM weight
), drawn AS (
    SELECT n.id AS building_id, h.h, random() AS r_size, random() AS r_res
    FROM counted n CROSS JOIN LATERAL generate_series(1, n.n) h(h)
    ORDER BY n.id, h.h
), sized AS (
    SELECT building_id, h,
           CASE WHEN r_size < 0.26 THEN 1 WHEN r_size < 0.56 THEN 2 WHEN r_size < 0.78 THEN 3
                WHEN r_size < 0.92 THEN 4 WHEN r_size < 0.98 THEN 5 ELSE 6 END AS size,
           CASE WHEN r_res < 0.50 THEN 'registered' WHEN r_res < 0.98 THEN 'migrant'
                WHEN r_res < 0.984 THEN 'macau' WHEN r_res < 0.994 THEN 'hongkong'
                ELSE 'foreign' END AS residency
    FROM drawn
)
SELECT s.building_id, s.h, s.size, s.residency,
       g.code || '-' || lpad(b.seq::text, 4, '0') || '-' || lpad(s.h::text, 3, '0') AS code,
       (sum(s.size) OVER (ORDER BY s.building_id, s.h) - s.size + 1)::int AS first_id
FROM sized s
JOIN bench_bldg b ON b.id = s.building_id
JOIN grid g ON g.id = b.grid_id
ORDER BY s.building_id, s.h;

-- step: drop secondary indexes for the bulk load
-- Bulk rows go in without the secondary indexes and triggers (every row is made inside its
-- grid, and every foreign key points at a row made above); the indexes come back as they
-- were defined by the migrations.
CREATE UNLOGGED TABLE bench_index AS
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = 'public' AND i.tablename IN ('building', 'resident')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname);
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT indexname FROM bench_index LOOP
        EXECUTE format('DROP INDEX %I', name);
    END LOOP;
END $$;

-- step: buildings
SET session_replication_role = replica;  -- no per-row trigger or foreign-key check
INSERT INTO building (id, code, name, address, grid_id, use, floors, households, risk_flags,
                      footprint, location)
SELECT b.id, g.code || '-' || lpad(b.seq::text, 4, '0'), a.name || b.seq || '栋',
       a.name || b.seq || '号', b.grid_id, b.use, b.floors, coalesce(h.n, 0), b.risk_flags,
       -- a square footprint, half a side b.half_m metres (degrees at 22.7 N)
       ST_Multi(ST_Expand(b.location, b.half_m / 102700.0, b.half_m / 110700.0)), b.location
FROM bench_bldg b
JOIN grid g ON g.id = b.grid_id
JOIN admin_unit a ON a.id = g.community_id
LEFT JOIN (SELECT building_id, count(*) AS n FROM bench_household GROUP BY building_id) h
       ON h.building_id = b.id
ORDER BY b.id;
SET session_replication_role = DEFAULT;

-- step: residents
-- Ages by the demo's bands (no child lives alone), vulnerabilities as in people.py
-- (child < 14; elderly_alone 65+ in a one-person household; disabled 5 % of 60+ and 1.5 %
-- of others; bedridden 6 % of 75+, 0.1 % of others; pregnant 5 % of women 20-40;
-- chronic_ill 12 % of 50+), 1.5 % moved out. Names and phones are cheap stand-ins.
SET session_replication_role = replica;
INSERT INTO resident (id, code, building_id, household_code, name, gender, birth_year, phone,
                      residency, vulnerabilities, registered_at, updated_at, moved_out_at)
WITH person AS (
    SELECT h.first_id + k - 1 AS id, h.building_id, h.code, h.size, h.residency,
           random() AS r_band, random() AS r_age, random() < 0.49 AS female,
           random() AS r_dis, random() AS r_bed, random() AS r_preg, random() AS r_chr,
           random() AS r_moved, random() AS r_reg, random() AS r_name, random() AS r_phone
    FROM bench_household h CROSS JOIN LATERAL generate_series(1, h.size) k
), aged AS (
    SELECT p.*, CASE WHEN p.size = 1 AND a.age < 18 THEN a.age + 30 ELSE a.age END AS age
    FROM person p CROSS JOIN LATERAL (SELECT (CASE
        WHEN p.r_band < 0.14 THEN floor(p.r_age * 14)
        WHEN p.r_band < 0.18 THEN 14 + floor(p.r_age * 4)
        WHEN p.r_band < 0.43 THEN 18 + floor(p.r_age * 17)
        WHEN p.r_band < 0.81 THEN 35 + floor(p.r_age * 25)
        WHEN p.r_band < 0.87 THEN 60 + floor(p.r_age * 5)
        WHEN p.r_band < 0.97 THEN 65 + floor(p.r_age * 15)
        ELSE 80 + floor(p.r_age * 16) END)::int AS age) a
)
SELECT id, 'R' || lpad(id::text, 9, '0'), building_id, code,
       substr('王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁郑谢宋唐许韩冯邓曹', 1 + floor(r_name * 30)::int, 1)
       || substr('伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚华玉萍红梅志晓东海燕丹俊嘉怡轩涵浩然欣宇航',
                 1 + floor(r_name * 997)::int % 43, 1),
       CASE WHEN female THEN 'F' ELSE 'M' END, 2026 - age,
       CASE WHEN age < 12 THEN NULL
            WHEN residency = 'macau' THEN '+853 6' || lpad(floor(r_phone * 1e7)::text, 7, '0')
            WHEN residency = 'hongkong' THEN '+852 9' || lpad(floor(r_phone * 1e7)::text, 7, '0')
            ELSE '1' || (3 + floor(r_name * 7)::int) || lpad(floor(r_phone * 1e9)::text, 9, '0')
       END,
       residency,
       array_remove(ARRAY[
           CASE WHEN age >= 65 AND size = 1 THEN 'elderly_alone' END,
           CASE WHEN r_dis < CASE WHEN age >= 60 THEN 0.05 ELSE 0.015 END THEN 'disabled' END,
           CASE WHEN r_bed < CASE WHEN age >= 75 THEN 0.06 ELSE 0.001 END THEN 'bedridden' END,
           CASE WHEN female AND age BETWEEN 20 AND 40 AND r_preg < 0.05 THEN 'pregnant' END,
           CASE WHEN age < 14 THEN 'child' END,
           CASE WHEN age >= 50 AND r_chr < 0.12 THEN 'chronic_ill' END], NULL),
       timestamptz '2026-06-01 00:00Z' - make_interval(days => 30 + floor(r_reg * 5445)::int),
       CASE WHEN r_moved < 0.015 THEN timestamptz '2026-05-25 00:00Z'
            ELSE timestamptz '2026-06-01 00:00Z' - make_interval(days => 30 + floor(r_reg * 5445)::int)
       END,
       CASE WHEN r_moved < 0.015 THEN timestamptz '2026-05-25 00:00Z' END
FROM aged;
SET session_replication_role = DEFAULT;

-- step: recreate the secondary indexes
DO $$
DECLARE definition text;
BEGIN
    FOR definition IN SELECT indexdef FROM bench_index ORDER BY indexname LOOP
        EXECUTE definition;
    END LOOP;
END $$;

-- step: stations and shelters
-- Per community (demo insert_stations / insert_shelters): one centre (a public or mixed
-- building first), a station per 4 grids (residential first), a post per 3 grids (12+
-- floors first); a shelter per 6 grids plus one (schools and public buildings first),
-- capacity by kind, 60 % with wheelchair access, 25 % with medical care.
INSERT INTO station (code, name, level, community_id, building_id, contact_name,
                     contact_phone, location)
WITH ranked AS (
    SELECT b.id, b.code, b.location, g.community_id, a.name AS community_name, b.name,
           row_number() OVER (PARTITION BY g.community_id ORDER BY
               (b.use IN ('public', 'mixed'))::int + random() DESC) AS centre_rank,
           row_number() OVER (PARTITION BY g.community_id ORDER BY
               (b.use = 'residential')::int + random() DESC) AS station_rank,
           row_number() OVER (PARTITION BY g.community_id ORDER BY
               (b.floors >= 12)::int + random() DESC) AS post_rank
    FROM building b JOIN grid g ON g.id = b.grid_id JOIN admin_unit a ON a.id = g.community_id
), grids AS (
    SELECT community_id, count(*) AS n FROM grid GROUP BY community_id
)
SELECT l.prefix || r.code, CASE l.level WHEN 'centre' THEN r.community_name ELSE r.name END
       || l.title, l.level, r.community_id, r.id, '站长' || r.id,
       '13' || lpad((r.id::bigint * 7919 % 1000000000)::text, 9, '0'), r.location
FROM (SELECT id, code, location, community_id, community_name, name, centre_rank, station_rank,
             post_rank FROM ranked) r
JOIN grids n USING (community_id)
JOIN (VALUES ('centre', 'C-', '党群服务中心'), ('station', 'S-', '党群服务站'),
             ('post', 'P-', '党群驿站')) l(level, prefix, title)
  ON (l.level = 'centre' AND r.centre_rank = 1)
  OR (l.level = 'station' AND r.station_rank <= greatest(n.n / 4, 1))
  OR (l.level = 'post' AND r.post_rank <= greatest(n.n / 3, 1));
INSERT INTO shelter (code, name, kind, address, community_id, capacity, wheelchair_access,
                     medical, location)
WITH ranked AS (
    SELECT b.id, b.code, b.use, b.address, b.location, g.community_id, b.name,
           row_number() OVER (PARTITION BY g.community_id ORDER BY
               (b.use IN ('school', 'public'))::int + random() DESC) AS rank
    FROM building b JOIN grid g ON g.id = b.grid_id
), grids AS (
    SELECT community_id, count(*) AS n FROM grid GROUP BY community_id
), picked AS (
    SELECT r.*, CASE WHEN r.use = 'school' THEN 'school'
                     ELSE (ARRAY['gymnasium', 'community_centre', 'purpose_built'])
                          [1 + floor(random() * 3)::int] END AS kind,
           random() AS r_cap, random() AS r_wheel, random() AS r_med
    FROM ranked r JOIN grids n USING (community_id)
    WHERE r.rank <= n.n / 6 + 1
)
SELECT 'H-' || p.code, p.name || '避护场所', p.kind, p.address, p.community_id,
       (floor((c.low + p.r_cap * (c.high - c.low)) / 10) * 10)::int,
       p.r_wheel < 0.6, p.r_med < 0.25, p.location
FROM picked p
JOIN (VALUES ('school', 300, 1500), ('gymnasium', 500, 3000), ('community_centre', 100, 400),
             ('purpose_built', 200, 1000)) c(kind, low, high) USING (kind);

-- step: grid teams and unit heads
-- A grid head and a grid worker per grid (demo insert_grid_teams, workers_per_grid 1), both
-- with a phone (their alerts go to the feed and by SMS); a head per community and street.
INSERT INTO app_user (username, display_name, role, password_hash, phone, residency)
SELECT t.prefix || g.code || t.suffix, g.name || t.title, t.role, '!',
       '1' || (3 + g.id % 7) || lpad((g.id::bigint * 104729 % 999999999 + t.n)::text, 9, '0'),
       'registered'
FROM grid g
CROSS JOIN (VALUES ('head-', '', '网格长', 'grid_head', 0),
                   ('worker-', '-1', '网格员1', 'grid_worker', 1)) t(prefix, suffix, title, role, n)
ORDER BY g.id, t.n;
INSERT INTO app_user_grid (app_user_id, grid_id)
SELECT u.id, g.id FROM app_user u JOIN grid g ON g.code = split_part(u.username, '-', 2)
WHERE u.role IN ('grid_head', 'grid_worker');
INSERT INTO app_user (username, display_name, role, password_hash, phone)
SELECT a.level || '-' || a.code, a.name || '负责人', 'unit_head', '!',
       '139' || lpad((a.id * 7919 % 100000000)::text, 8, '0')
FROM admin_unit a WHERE a.level IN ('community', 'street') ORDER BY a.code;
INSERT INTO app_user_unit (app_user_id, admin_unit_id)
SELECT u.id, a.id FROM app_user u JOIN admin_unit a ON u.username = a.level || '-' || a.code
WHERE u.role = 'unit_head';

-- step: kept totals
-- What a demo load keeps: grid households, the sequences, the per-grid totals targeting
-- reads (grid_total, gridgis.layers.totals.refresh_totals).
UPDATE grid g SET households = h.n
FROM (SELECT b.grid_id, count(DISTINCT r.household_code) AS n
      FROM resident r JOIN building b ON b.id = r.building_id
      WHERE r.moved_out_at IS NULL GROUP BY b.grid_id) h
WHERE h.grid_id = g.id;
SELECT setval(pg_get_serial_sequence('building', 'id'), (SELECT max(id) FROM building));
SELECT setval(pg_get_serial_sequence('resident', 'id'), (SELECT max(id) FROM resident));
REFRESH MATERIALIZED VIEW grid_total;
DROP TABLE bench_node, bench_edge, bench_cell, bench_community, bench_bldg, bench_household,
           bench_index;

-- step: vacuum analyze
VACUUM (ANALYZE);
