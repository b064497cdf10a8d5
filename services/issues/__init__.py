"""The issues service: problems and their travel up the escalation ladder, the 12345 hotline, Open311.

Rooms: ``domain`` (pure), ``handlers``, ``queries``, ``projections``, ``reactions``, ``api``,
``bootstrap`` (the composition root), ``app`` (the spec), ``settings``, ``cli``, ``bench``.
"""
