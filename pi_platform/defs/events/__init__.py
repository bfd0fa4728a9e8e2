"""Event frames, alarms (acknowledgeable event frames) and the daily alarm KPIs."""
