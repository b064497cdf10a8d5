"""The console's web edge: sessions, the page guard, rendering, labels, and one module of pages
per area (their routers are gathered in :mod:`.routes`)."""
