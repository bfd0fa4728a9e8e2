"""A benchmark's peak memory belongs to the measured process alone, not to whoever started it."""

import json
import subprocess
import sys

_CHILD = ("import json, resource; from pi_platform.bench.procstat import self_peak_rss_bytes; "
          "print(json.dumps([self_peak_rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]))")


def test_a_child_does_not_report_its_parents_peak():
    held = bytearray(600 * 2**20)  # the parent peaks well above what a bare child interpreter ever holds
    held[:: 4096] = b"x" * len(held[:: 4096])  # touch every page so it is resident
    own, inherited = json.loads(subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, check=True,
                                               text=True).stdout)
    del held
    assert inherited >= 600 * 2**20  # ru_maxrss carries the parent's high-water mark across fork + exec
    assert own < 300 * 2**20  # VmHWM is the child's own
