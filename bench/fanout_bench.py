"""Fan-out benchmark: collab_kernels vs jupyter-collaboration + nbmodel vs jupyter-server-documents.

    .venv/bin/python bench/fanout_bench.py           # full run, writes docs/benchmarks.{md,png}
    .venv/bin/python bench/fanout_bench.py --quick   # smoke run, 20 watchers

See bench/README.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout.run import main

if __name__ == "__main__":
    sys.exit(main())
