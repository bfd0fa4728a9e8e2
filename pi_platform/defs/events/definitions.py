import dagster as dg

from pi_platform.defs.events.assets import alarm_kpis, alarms, event_frames

defs = dg.Definitions(assets=[event_frames, alarms, alarm_kpis])
