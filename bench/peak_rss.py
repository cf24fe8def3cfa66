"""Run a command and write its peak resident memory (MB, children included) to a file."""

import resource
import subprocess
import sys

out, cmd = sys.argv[1], sys.argv[2:]
code = subprocess.call(cmd)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out, "w") as handle:
    handle.write(f"{peak_kb / 1024:.0f}")
sys.exit(code)
