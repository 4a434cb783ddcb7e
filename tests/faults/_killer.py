"""Run the ``medcl`` command and kill it with SIGKILL at a chosen write.

``python -m tests.faults._killer PATTERN N medcl-arguments...``: the N-th ``os.replace``
onto a path matching the glob ``PATTERN`` (every atomic write of medcl ends in one) kills
the process just before the file takes its final name: the worst moment, with the new
content written to a temporary file and nothing else done.
"""

import fnmatch
import os
import signal
import sys


def main() -> None:
    pattern, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    real = os.replace
    seen = [0]

    def replace(src, dst, *a, **k):
        if fnmatch.fnmatch(os.fspath(dst), pattern):
            seen[0] += 1
            if seen[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)

    os.replace = replace
    from medcl.cli import main as medcl

    sys.exit(medcl(args))


if __name__ == "__main__":
    main()
