"""Storage ports (repositories and a unit of work) and their adapters."""
