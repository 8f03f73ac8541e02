-- The fleet, for the console's executors page: what each executor is (worker: runs what it
-- claims; dispatcher: hands what it claims to Celery; celery: runs what it is handed) and, for
-- a Celery worker process, the Celery node name (name@host) it belongs to.

ALTER TABLE executors ADD COLUMN role TEXT;
ALTER TABLE executors ADD COLUMN node_name TEXT;
