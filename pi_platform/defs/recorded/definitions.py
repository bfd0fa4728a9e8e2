import dagster as dg

from pi_platform.defs.recorded.assets import recorded_values

defs = dg.Definitions(assets=[recorded_values])
