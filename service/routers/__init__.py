"""One router per resource: score, jobs, models, health, metrics."""
