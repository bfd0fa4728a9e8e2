import dagster as dg

from pi_platform.defs.calendar import freshness, schedules

defs = dg.Definitions.merge(schedules.defs, freshness.defs)
