"""The console's pure domain: accounts (decide and evolve), no I/O."""
