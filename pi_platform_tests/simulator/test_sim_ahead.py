"""Channel text rendered ahead of time (`ahead.py`) against a simple reference: each poll's values rendered on
their own.

A channel renders spans of several generator buckets as one text and finds where each TimedValue starts by
scanning it; a poll then cuts each stream's range out of that text. Byte for byte, the pieces must be what
rendering the stream's values in (last, now] as of `now` gives: units outside ASCII (°C), digital and system
states (objects inside a value), same-timestamp groups, and polls late enough that corrections are already due.
"""

import numpy as np

from pi_platform.simulator import jsonfmt
from pi_platform.simulator.ahead import ChannelAhead
from pi_platform.simulator.plant import Plant
from pi_platform.simulator.values import as_of

START_US = 1_796_000_000_123_456
# Poll steps (s): regular polls, a few inside one bucket, then late ones past spans and correction delays.
STEPS_S = [0.25, 0.25, 0.05, 0.5, 3.0, 0.25, 12.0, 0.25, 45.0, 0.1, 70.0, 0.25, 0.25, 200.0, 0.3, 1.0]


def test_polls_cut_from_rendered_spans_equal_each_poll_rendered_alone():
    plant = Plant(n_tags=40, values_per_minute=1200, edge_tags=True, event_frames=False)
    streams = [plant.stream(p.web_id) for p in plant.points if plant.is_generated(p)]
    assert any(not s.units.isascii() for s in streams) and any(s.point.digital_set for s in streams)
    generated = np.ones(len(streams), dtype=bool)
    ahead = ChannelAhead(plant, streams, START_US, poll_us=250_000, phase=0.37)
    assert ahead.span_us > 2 * max(plant.generator.profile(s.point).bucket_us for s in streams[:30])
    last, sent, states = START_US, 0, 0
    for step in STEPS_S:
        now = last + int(step * 1e6)
        pieces, count, _ = ahead.take(last, now, generated)
        want = {}
        for index, stream in enumerate(streams):
            block = as_of(plant.generator.block(stream.point, last + 1, now), now)
            if len(block):
                want[index] = jsonfmt.timed_values(block, stream.point, stream.units)[1:-1]
                sent += len(block)
        assert {i: ",".join(p) for i, p in pieces.items()} == want, f"poll ending {step} s after the previous"
        assert count == sum(text.count('{"Timestamp":') for text in want.values())
        states += sum(text.count('{"Name":') for text in want.values())
        last = now
    assert sent > 50_000 and states > 0
