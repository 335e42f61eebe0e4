"""memoryhub's benchmark suite (not collected by pytest): `python -m tests.bench.run [suite ...]`.

- harness.py: the bench database, the server layouts under test, the load generator and the report;
- floor.py and urls.py: the floor endpoints served by the same server processes as the hub;
- bench_*.py: one module per issue's benchmark.
"""
