"""Join control groups, then become the command (standard library only; see cgroup.py).

    python cgjoin.py GROUP_DIR... -- COMMAND ARG...
"""
import os
import sys

if __name__ == "__main__":
    split = sys.argv.index("--")
    for group in sys.argv[1:split]:
        with open(os.path.join(group, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    os.execvp(sys.argv[split + 1], sys.argv[split + 1:])
