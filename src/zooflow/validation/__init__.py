"""Great Expectations suites, run on a task's manifest (one row per sample)."""
