-- `priority` is the effective priority that claims order by; aging raises it over time.
-- `requested_priority` keeps what the request asked for.
ALTER TABLE executions ADD COLUMN requested_priority INTEGER;
UPDATE executions SET requested_priority = priority;
