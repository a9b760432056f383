"""Side-by-side CPU benchmarks of backbones, detectors and exported graphs.

``cases`` builds what is compared (each case a callable plus a JSON-able spec that rebuilds it),
``measure`` times cases interleaved and measures peak memory in fresh processes, ``report`` writes the
tables and the plot, ``protocol`` names the groups and runs them from the options to the report.
``tools/analysis_tools/benchmark.py`` is the command line. ``checkouts`` times the same cases on two
checkouts of the repository (a change's before and after), interleaved
(``tools/analysis_tools/benchmark_checkouts.py``).
"""
