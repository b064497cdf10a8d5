"""Value types several contexts share (categories, places, levels)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

#: The five problem categories of the monthly "report the 5 categories" quota.
Category = Literal[
    "public_facilities",  # 公共设施
    "environmental_sanitation",  # 环境卫生
    "safety_hazards",  # 安全隐患
    "conflicts_disputes",  # 矛盾纠纷
    "livelihood_services",  # 民生服务
]
CATEGORIES: tuple[Category, ...] = get_args(Category)

Severity = Literal["low", "medium", "high", "critical"]

#: The escalation ladder: 小事不出楼栋、大事不出小区、落脚点在社区.
Level = Literal["building", "compound", "community", "street"]
LEVELS: tuple[Level, ...] = get_args(Level)

#: Outside agencies an issue can be escalated to.
Target = Literal["property_management", "police", "street_office", "urban_management", "hotline"]

#: 定期敲 in person / 网上敲 online (WeChat) / 重点敲 priority (elderly, living alone).
ContactMode = Literal["regular", "online", "priority"]

TalentField = Literal["culture_sports", "repairs", "organising", "design_planning"]


class Place(BaseModel):
    """Where something is: compound (小区) → phase (期) → building (楼栋) → unit (单元)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    compound: str | None = Field(default=None, max_length=64)
    phase: str | None = Field(default=None, max_length=32)
    building: str | None = Field(default=None, max_length=32)
    unit: str | None = Field(default=None, max_length=32)
    grid: str | None = Field(default=None, max_length=64)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
