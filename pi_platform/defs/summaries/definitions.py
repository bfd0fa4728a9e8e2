import dagster as dg

from pi_platform.defs.summaries.assets import interpolated_values, recorded_summaries

defs = dg.Definitions(assets=[recorded_summaries, interpolated_values])
