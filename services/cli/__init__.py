"""The ``gridwork`` command and the tools it is made of.

This is the one package that may import every service (``main`` builds the command line from
each service's ``cli`` room).  Its leaf modules — ``embedded`` (nats-server and PostgreSQL from
the wheels), ``local`` (settings of the stack ``gridwork up`` runs), ``benchkit`` (benchmark
harness), ``workload`` (the one workload generator) — import only ``shared``, so a service's own
``cli`` and ``bench`` rooms may use them.  Nothing here is imported by a service at run time.
"""
