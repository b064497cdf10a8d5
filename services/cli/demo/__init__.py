"""``gridwork demo``: a month in Bairuijing (百瑞景社区), played through the public HTTP APIs.

It starts the stack (``gridwork up``), seeds the community as DOMAIN.md describes it — 25 grid
workers plus the secretary and deputy, four phases of buildings, thousands of households with
special-assistance, elderly-alone and young residents, party members, the building leader, and a
directory of property management, the police station and the street office pointing at local
receivers the demo starts — then plays a month of work as field apps and the hotline would:
shifts, knocks in the three modes, special visits, Friday sessions, a building council, a
training, surveys, small problems in all five categories, volunteer service for points, hotline
work orders, and the four real cases with their escalations and deliveries.

Some workers do all their quotas, some miss some, so the board shows a real ranking.  What the
demo did is kept as a :class:`Plan`, so a test can check the board against it.
"""

from .command import cmd_demo, register
from .community import COMMUNITY, Plan, Worker, demo_window, working_days
from .run import Demo, DemoReceiver, demo_environment, demo_receiver

__all__ = [
    "COMMUNITY",
    "Demo",
    "DemoReceiver",
    "Plan",
    "Worker",
    "cmd_demo",
    "demo_environment",
    "demo_receiver",
    "demo_window",
    "register",
    "working_days",
]
