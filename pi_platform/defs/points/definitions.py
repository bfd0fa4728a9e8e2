import dagster as dg

from pi_platform.defs.points.assets import pi_points

defs = dg.Definitions(assets=[pi_points])
