-- Shelter capacity and occupancy of units :units at :level (grid: the shelters inside the
-- grid; community, street, district: the shelters the unit holds) as they were at :at:
-- occupancy now, less the check-ins made after :at, plus the check-outs made after it.
WITH shelters AS (
    SELECT s.id, s.capacity, s.occupancy,
           CASE CAST(:level AS text) WHEN 'grid' THEN g.code WHEN 'community' THEN cu.code
                WHEN 'street' THEN st.code ELSE di.code END AS unit
    FROM shelter s
    JOIN admin_unit cu ON cu.id = s.community_id
    JOIN admin_unit st ON st.id = cu.parent_id
    JOIN admin_unit di ON di.id = st.parent_id
    LEFT JOIN grid g ON CAST(:level AS text) = 'grid' AND g.community_id = cu.id
                        AND g.retired_at IS NULL AND ST_Covers(g.boundary, s.location)
    WHERE s.retired_at IS NULL
), later AS (
    -- occupancy each change made after :at (a check-in adds, a check-out takes off)
    SELECT e.shelter_id, CASE WHEN e.stage = 'checked_in' THEN coalesce(e.head_count, 0)
                              ELSE 0 END AS delta
    FROM checklist_event e WHERE e.at > CAST(:at AS timestamptz) AND e.shelter_id IS NOT NULL
    UNION ALL
    SELECT e.was_shelter, -coalesce(e.was_head_count, 0)
    FROM (SELECT e.at, lag(e.stage) OVER w AS was_stage, lag(e.shelter_id) OVER w AS was_shelter,
                 lag(e.head_count) OVER w AS was_head_count
          FROM checklist_event e WHERE e.item_id IN (
              SELECT item_id FROM checklist_event WHERE at > CAST(:at AS timestamptz))
          WINDOW w AS (PARTITION BY e.item_id ORDER BY e.at, e.id)) e
    WHERE e.at > CAST(:at AS timestamptz) AND e.was_stage = 'checked_in'
      AND e.was_shelter IS NOT NULL
)
SELECT s.unit, sum(s.capacity)::int AS capacity,
       greatest(0, sum(s.occupancy) - coalesce(sum(l.delta), 0))::int AS occupancy
FROM shelters s
LEFT JOIN (SELECT shelter_id, sum(delta) AS delta FROM later GROUP BY shelter_id) l
       ON l.shelter_id = s.id
WHERE s.unit = ANY(:units)
GROUP BY s.unit
