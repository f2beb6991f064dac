"""The shell: command lines, progress display, reset, locks, logging, keep-awake, exit codes.

It depends on the core (config, run context, pipeline, phases), never the reverse."""
