-- Up Migration
CREATE TABLE sections (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
  description text,
  -- Bumped by triggers on every plot or burial change: workers cache a section's
  -- map data and re-read it only when this moves.
  map_version bigint NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plots (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  section_id  integer NOT NULL REFERENCES sections (id) ON DELETE RESTRICT,
  "row"       integer NOT NULL CHECK ("row" BETWEEN 1 AND 1000),
  number      integer NOT NULL CHECK (number BETWEEN 1 AND 1000),
  status      text NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'reserved', 'occupied')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (section_id, "row", number)
);
CREATE INDEX plots_section_status_idx ON plots (section_id, status);

CREATE TABLE burials (
  id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- One burial per plot: the database enforces what the API checks.
  plot_id       integer NOT NULL UNIQUE REFERENCES plots (id) ON DELETE RESTRICT,
  deceased_name text NOT NULL CHECK (length(deceased_name) BETWEEN 1 AND 200),
  birth_date    date,
  death_date    date NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (birth_date IS NULL OR birth_date <= death_date)
);
CREATE INDEX burials_name_idx ON burials (lower(deceased_name));

CREATE FUNCTION bump_section_map_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'plots' THEN
    UPDATE sections SET map_version = map_version + 1 WHERE id = COALESCE(NEW.section_id, OLD.section_id);
  ELSE
    UPDATE sections SET map_version = map_version + 1
     WHERE id = (SELECT section_id FROM plots WHERE id = COALESCE(NEW.plot_id, OLD.plot_id));
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER plots_bump_map_version AFTER INSERT OR UPDATE OR DELETE ON plots
  FOR EACH ROW EXECUTE FUNCTION bump_section_map_version();
CREATE TRIGGER burials_bump_map_version AFTER INSERT OR UPDATE OR DELETE ON burials
  FOR EACH ROW EXECUTE FUNCTION bump_section_map_version();

-- Down Migration
DROP TABLE burials;
DROP TABLE plots;
DROP TABLE sections;
DROP FUNCTION bump_section_map_version();
