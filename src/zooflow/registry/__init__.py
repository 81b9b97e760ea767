"""MLflow: tracking, the pyfunc wrapper, registration, aliases and the promotion policy."""
