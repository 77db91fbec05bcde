"""``python -m benchmarks.report``: the report's command line (:func:`benchmarks.report.main`)."""

import sys

from benchmarks.report.cli import main

sys.exit(main())
