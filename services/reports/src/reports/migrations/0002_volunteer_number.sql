-- The volunteer number registry now publishes in VolunteerState: the national service record's 志愿者编号.
ALTER TABLE volunteers ADD COLUMN volunteer_number text;
