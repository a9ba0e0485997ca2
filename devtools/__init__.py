"""Developer tools run from a checkout, never in the wheel: notebook reports, the JVM class archive."""
