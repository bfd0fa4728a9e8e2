import dagster as dg

from pi_platform.defs.healing.check import late_edits_applied
from pi_platform.defs.healing.sensor import late_edits_sensor

defs = dg.Definitions(asset_checks=[late_edits_applied], sensors=[late_edits_sensor])
