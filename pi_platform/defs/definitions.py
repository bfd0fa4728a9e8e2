"""The pi_platform code location: every domain's definitions merged, with resources from the environment.

    dagster dev -m pi_platform.defs.definitions
"""

import dagster as dg

from pi_platform.defs import freshness, schedules, streaming
from pi_platform.defs.af import definitions as af
from pi_platform.defs.events import definitions as events
from pi_platform.defs.maintenance import jobs as maintenance
from pi_platform.defs.points import definitions as points
from pi_platform.defs.recorded import definitions as recorded
from pi_platform.defs.resources import resources_from_env

defs = dg.Definitions.merge(
    af.defs,
    points.defs,
    recorded.defs,
    events.defs,
    maintenance.defs,
    schedules.defs,
    freshness.defs,
    streaming.defs,
    dg.Definitions(resources=resources_from_env()),
)
