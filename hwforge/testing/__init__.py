"""Test-only helpers shipped with the package (so that installed copies can run hwforge's own checks).

Nothing here is reachable from the command-line options: `faults` is how tests select a deliberately broken
variant of a generated design or kernel to prove that verification catches it.
"""
