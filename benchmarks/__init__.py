"""Speed benchmarks of fastmeta against its peers; run them all with ``python -m benchmarks``."""
