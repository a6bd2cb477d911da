-- Up Migration
-- A section holds at most MAX_GRID_PLOTS plots, its grid and plots added later
-- together. The database keeps the count (sections.plot_count) and checks the
-- cap, so concurrent creations cannot pass it: each statement's update of the
-- section row queues behind the others', then sees their count. The app names
-- its cap per transaction (cemetery.max_section_plots); other sessions (psql)
-- get 10000, the most MAX_GRID_PLOTS may be. One update of the section per
-- statement (transition tables), not one per plot: a 2,500-plot grid is one.
ALTER TABLE sections ADD COLUMN plot_count integer NOT NULL DEFAULT 0 CHECK (plot_count >= 0);
UPDATE sections s SET plot_count = (SELECT count(*) FROM plots p WHERE p.section_id = s.id);

CREATE FUNCTION section_plot_cap() RETURNS integer LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(current_setting('cemetery.max_section_plots', true), '')::integer, 10000) $$;

-- Each branch names only the transition tables its event has.
CREATE FUNCTION count_section_plots() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cap integer := section_plot_cap();
  ids integer[];
  deltas integer[];
  s record;
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(section_id), array_agg(n) INTO ids, deltas
      FROM (SELECT section_id, count(*)::integer AS n FROM new_rows GROUP BY section_id) d;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(section_id), array_agg(n) INTO ids, deltas
      FROM (SELECT section_id, -count(*)::integer AS n FROM old_rows GROUP BY section_id) d;
  ELSE
    SELECT array_agg(section_id), array_agg(n) INTO ids, deltas
      FROM (SELECT section_id, sum(n)::integer AS n
              FROM (SELECT section_id, 1 AS n FROM new_rows UNION ALL SELECT section_id, -1 FROM old_rows) c
             GROUP BY section_id) d;
  END IF;
  FOR s IN
    UPDATE sections SET plot_count = plot_count + d.n, map_version = map_version + 1
      FROM unnest(ids, deltas) AS d(section_id, n)
     WHERE sections.id = d.section_id
    RETURNING sections.id, sections.plot_count, d.n
  LOOP
    IF s.n > 0 AND s.plot_count > cap THEN
      RAISE EXCEPTION 'section % would hold % plots, over its cap of % (MAX_GRID_PLOTS)', s.id, s.plot_count, cap
        USING ERRCODE = 'check_violation', CONSTRAINT = 'section_plot_cap';
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

DROP TRIGGER plots_bump_map_version ON plots;
CREATE TRIGGER plots_counted_insert AFTER INSERT ON plots REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION count_section_plots();
CREATE TRIGGER plots_counted_update AFTER UPDATE ON plots REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION count_section_plots();
CREATE TRIGGER plots_counted_delete AFTER DELETE ON plots REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION count_section_plots();

-- Down Migration
DROP TRIGGER plots_counted_insert ON plots;
DROP TRIGGER plots_counted_update ON plots;
DROP TRIGGER plots_counted_delete ON plots;
DROP FUNCTION count_section_plots();
DROP FUNCTION section_plot_cap();
CREATE TRIGGER plots_bump_map_version AFTER INSERT OR UPDATE OR DELETE ON plots
  FOR EACH ROW EXECUTE FUNCTION bump_section_map_version();
ALTER TABLE sections DROP COLUMN plot_count;
