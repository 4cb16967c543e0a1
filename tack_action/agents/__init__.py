"""Agent runtimes and the loop that runs an agent inside a sandbox."""
