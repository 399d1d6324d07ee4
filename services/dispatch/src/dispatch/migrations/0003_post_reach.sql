-- A post may ask only volunteers within a distance (an escalation's radius).
ALTER TABLE posts ADD COLUMN max_distance_km DOUBLE PRECISION;
