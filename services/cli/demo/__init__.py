"""``gridwork demo``: a month in Bairuijing (百瑞景社区), played through the public HTTP APIs.

It starts the stack (``gridwork up``), seeds the community as DOMAIN.md describes it — 25 grid
workers plus the secretary and deputy, four phases of buildings, thousands of households with
special-assistance, elderly-alone and young residents, party members, the building leader, and a
directory of property management, the police station and the street office pointing at local
receivers the demo starts — then plays a month of work as field apps and the hotline would:
shifts, knocks in the three modes, special visits, Friday sessions, building councils, trainings,
surveys, small problems in all five categories, hotline work orders, and the four real cases with
their escalations, volunteer service for points and deliveries.

The community and each worker's days come from the one workload generator
(:func:`services.cli.workload.bairuijing`, :func:`~services.cli.workload.generate_community`) and
are played through the APIs as ``gridwork simulate --via api`` plays them.  Fifteen workers do
every quota, six miss some, four miss most, so the board shows a real ranking.  What the demo
played is folded into a :class:`MonthPlan`, so a test can check the board against it.
"""

from .command import cmd_demo, register
from .community import COMMUNITY, MonthPlan, Worker, demo_window, working_days
from .run import Demo, DemoReceiver, demo_environment, demo_receiver

__all__ = [
    "COMMUNITY",
    "Demo",
    "DemoReceiver",
    "MonthPlan",
    "Worker",
    "cmd_demo",
    "demo_environment",
    "demo_receiver",
    "demo_window",
    "register",
    "working_days",
]
