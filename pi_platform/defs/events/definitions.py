import dagster as dg

from pi_platform.defs.events.assets import alarm_kpis, alarms, event_frames
from pi_platform.defs.events.sensors import alarm_kpis_late_changes, alarm_kpis_refresh_job

defs = dg.Definitions(
    assets=[event_frames, alarms, alarm_kpis], jobs=[alarm_kpis_refresh_job], sensors=[alarm_kpis_late_changes]
)
