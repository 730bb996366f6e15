"""Tools for developing and measuring the service: benchmarks, checks and the helpers they share.

The scripts in scripts/ are command-line entry points over these modules; the
tests import the shared helpers (synthetic media and weights, memory meters,
a throwaway PostgreSQL server) from here too.
"""
