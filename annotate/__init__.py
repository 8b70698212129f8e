"""Crowd labeling of dissected units: campaigns, tasks, answers, aggregation, reports, exports."""
