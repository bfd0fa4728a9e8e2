import dagster as dg

from pi_platform.defs.af.assets import af_attributes, af_elements

defs = dg.Definitions(assets=[af_elements, af_attributes])
