"""One module per musicgen command; `musicgen.cli` registers them on the group."""
