"""Fan-out benchmark: how fast one cell's output reaches N watchers' documents.

Run it with ``make bench`` (or ``.venv/bin/python bench/fanout_bench.py --help``); see
bench/README.md.
"""
