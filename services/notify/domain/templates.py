"""Message templates in Chinese and English: escalations, overdue reminders, the daily digest, a test.

``render(kind, language, facts, ack_url)`` gives one :class:`Rendered` with a title, a plain text
(email, webhook), a markdown text (WeCom) and a short text (SMS).  Facts are the snapshot the
projection stored with the notification, so a retry renders exactly what the first try did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LABELS: dict[str, dict[str, dict[str, str]]] = {
    "category": {
        "zh": {
            "public_facilities": "公共设施",
            "environmental_sanitation": "环境卫生",
            "safety_hazards": "安全隐患",
            "conflicts_disputes": "矛盾纠纷",
            "livelihood_services": "民生服务",
        },
        "en": {
            "public_facilities": "public facilities",
            "environmental_sanitation": "environmental sanitation",
            "safety_hazards": "safety hazard",
            "conflicts_disputes": "conflict or dispute",
            "livelihood_services": "livelihood services",
        },
    },
    "severity": {
        "zh": {"low": "低", "medium": "中", "high": "高", "critical": "紧急"},
        "en": {"low": "low", "medium": "medium", "high": "high", "critical": "critical"},
    },
    "level": {
        "zh": {"building": "楼栋", "compound": "小区", "community": "社区", "street": "街道"},
        "en": {"building": "building", "compound": "compound", "community": "community", "street": "street"},
    },
    "target": {
        "zh": {
            "property_management": "物业",
            "police": "派出所",
            "street_office": "街道办",
            "urban_management": "城管",
            "hotline": "12345热线",
        },
        "en": {
            "property_management": "property management",
            "police": "police station",
            "street_office": "street office",
            "urban_management": "urban management",
            "hotline": "12345 hotline",
        },
    },
    "reason": {
        "zh": {
            "manual": "人工上报",
            "severity": "问题严重",
            "overdue": "超时未办",
            "unacknowledged": "上一级未确认",
            "rule": "规则升级",
        },
        "en": {
            "manual": "raised by hand",
            "severity": "serious",
            "overdue": "overdue",
            "unacknowledged": "not acknowledged below",
            "rule": "escalation rule",
        },
    },
    "quota": {
        "zh": {
            "hours_in_grid": "在网格时长",
            "households_contacted": "联系住户",
            "small_problem": "发现或解决小问题",
            "special_visit": "走访帮扶对象",
            "face_to_face": "居民面对面",
            "party_member": "党员参与",
            "categories": "五类问题上报",
            "building_council": "楼栋议事会",
            "resident_friends": "结交居民朋友",
            "training": "专业培训",
            "talents": "发现社区能人",
            "assessment": "年度测评",
        },
        "en": {},
    },
    "period": {
        "zh": {"day": "日", "week": "周", "month": "月", "quarter": "季度", "year": "年"},
        "en": {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"},
    },
}


@dataclass(frozen=True)
class Rendered:
    """One message in the shapes the channels need."""

    title: str
    text: str
    markdown: str
    short: str


def label(kind: str, value: str | None, language: str) -> str:
    """The display name of a code in ``language`` (the code itself when unknown)."""
    if value is None:
        return "—"
    return LABELS.get(kind, {}).get(language, {}).get(value, value.replace("_", " "))


def place_text(place: dict[str, Any] | None, language: str) -> str:
    """A place as people say it: 百瑞景 4期 4栋 2单元 / Bairuijing phase 4 building 4 unit 2."""
    place = place or {}
    if language == "zh":
        parts = [
            place.get("compound") or "",
            f"{place['phase']}期" if place.get("phase") else "",
            f"{place['building']}栋" if place.get("building") else "",
            f"{place['unit']}单元" if place.get("unit") else "",
            f"（{place['grid']}网格）" if place.get("grid") else "",
        ]
        return "".join(parts) or "—"
    parts = [
        place.get("compound") or "",
        f"phase {place['phase']}" if place.get("phase") else "",
        f"building {place['building']}" if place.get("building") else "",
        f"unit {place['unit']}" if place.get("unit") else "",
        f"(grid {place['grid']})" if place.get("grid") else "",
    ]
    return " ".join(p for p in parts if p) or "—"


def _clip(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escalation(f: dict[str, Any], lang: str, ack_url: str | None) -> Rendered:
    cat = label("category", f.get("category"), lang)
    sub = f.get("subcategory")
    sev = label("severity", f.get("severity"), lang)
    where = place_text(f.get("place"), lang)
    desc = _clip(f.get("description"), 1000)
    issue = f.get("issue_id", "")
    if lang == "zh":
        title = f"【问题升级】{cat}{'·' + sub if sub else ''}（{sev}）{where}"
        lines = [
            f"问题编号：{issue}",
            f"类别：{cat}{' / ' + sub if sub else ''}",
            f"严重程度：{sev}",
            f"地点：{where}",
            f"升级：{label('level', f.get('from_level'), lang)} → {label('level', f.get('to_level'), lang)}"
            f"（{label('reason', f.get('reason'), lang)}）",
            f"承办：{label('target', f.get('target'), lang)}",
            f"情况：{desc or '—'}",
        ]
        ack_line = f"请确认收到：{ack_url}" if ack_url else ""
        short = f"【网格通知】{cat}{'·' + sub if sub else ''}（{sev}）{where}。{_clip(desc, 60)}"
        md_ack = f"[确认收到]({ack_url})" if ack_url else ""
    else:
        title = f"[Escalation] {cat}{' / ' + sub if sub else ''} ({sev}) at {where}"
        lines = [
            f"Issue: {issue}",
            f"Category: {cat}{' / ' + sub if sub else ''}",
            f"Severity: {sev}",
            f"Where: {where}",
            f"Escalated: {label('level', f.get('from_level'), lang)} → {label('level', f.get('to_level'), lang)}"
            f" ({label('reason', f.get('reason'), lang)})",
            f"To: {label('target', f.get('target'), lang)}",
            f"What: {desc or '—'}",
        ]
        ack_line = f"Please acknowledge: {ack_url}" if ack_url else ""
        short = f"[gridwork] {cat}{' / ' + sub if sub else ''} ({sev}) at {where}. {_clip(desc, 80)}"
        md_ack = f"[Acknowledge]({ack_url})" if ack_url else ""
    text = "\n".join([*lines, ack_line]).strip()
    colour = "warning" if f.get("severity") in ("high", "critical") else "info"
    markdown = "\n".join(
        [f'## <font color="{colour}">{title}</font>', *(f"> {line}" for line in lines), md_ack]
    ).strip()
    if ack_url:
        short = f"{short} {ack_line}"
    return Rendered(title, text, markdown, short)


def _overdue(f: dict[str, Any], lang: str, ack_url: str | None) -> Rendered:
    cat = label("category", f.get("category"), lang)
    where = place_text(f.get("place"), lang)
    issue = f.get("issue_id", "")
    level = label("level", f.get("level"), lang)
    deadline = str(f.get("deadline", ""))[:16].replace("T", " ")
    if lang == "zh":
        title = f"【超时提醒】{cat} {where} 在{level}层级已超过办理时限"
        lines = [
            f"问题编号：{issue}",
            f"时限：{deadline}",
            f"状态：{f.get('state', '')}",
            f"情况：{_clip(f.get('description'), 500) or '—'}",
        ]
        short = f"【网格提醒】问题{issue}已超时（{level}）"
    else:
        title = f"[Overdue] {cat} at {where} passed its deadline at {level} level"
        lines = [
            f"Issue: {issue}",
            f"Deadline: {deadline}",
            f"State: {f.get('state', '')}",
            f"What: {_clip(f.get('description'), 500) or '—'}",
        ]
        short = f"[gridwork] issue {issue} is overdue ({level})"
    return Rendered(title, "\n".join(lines), "\n".join([f"## {title}", *(f"> {x}" for x in lines)]), short)


def _digest(f: dict[str, Any], lang: str, ack_url: str | None) -> Rendered:
    lines_in = f.get("lines", [])
    day = f.get("day", "")
    out: list[str] = []
    for line in lines_in:
        missed = [label("quota", item, lang) for item in line.get("missed", [])]
        period = label("period", line.get("period"), lang)
        if lang == "zh":
            out.append(f"{line.get('worker_id')}（{period} {line.get('period_key')}）未完成：{'、'.join(missed)}")
        else:
            out.append(f"{line.get('worker_id')} ({period} {line.get('period_key')}) missed: {', '.join(missed)}")
    workers = len({line.get("worker_id") for line in lines_in})
    if lang == "zh":
        title = f"【每日汇总】{day} 5+1任务未完成 {len(lines_in)} 项（{workers} 名网格员）"
        short = f"【网格汇总】{day} 有{workers}名网格员未完成5+1任务，详见邮件"
    else:
        title = f"[Daily digest] {day}: {len(lines_in)} missed 5+1 quotas ({workers} grid workers)"
        short = f"[gridwork] {day}: {workers} grid workers missed 5+1 quotas"
    return Rendered(title, "\n".join([title, "", *out]), "\n".join([f"## {title}", *(f"- {x}" for x in out)]), short)


def _test(f: dict[str, Any], lang: str, ack_url: str | None) -> Rendered:
    test_id, name, by = f.get("test_id", ""), f.get("recipient_name", ""), f.get("requested_by", "")
    if lang == "zh":
        title = "【测试】网格通知测试消息，无需处理"
        lines = [f"这是一条测试消息：{name} 能收到社区的网格通知。", f"测试编号：{test_id}", f"发起人：{by}"]
        short = f"【网格测试】{name}测试消息（{test_id}），无需处理"
    else:
        title = "[Test] gridwork test message, no action needed"
        lines = [f"This is a test: {name} receives the community's notifications.", f"Test: {test_id}", f"By: {by}"]
        short = f"[gridwork] test message for {name} ({test_id}), no action needed"
    return Rendered(
        title, "\n".join([title, "", *lines]), "\n".join([f"## {title}", *(f"> {x}" for x in lines)]), short
    )


_KINDS = {"escalation": _escalation, "overdue": _overdue, "digest": _digest, "test": _test}


def render(kind: str, language: str, facts: dict[str, Any], ack_url: str | None = None) -> Rendered:
    """The message of ``kind`` in ``language`` (zh or en) for ``facts``."""
    return _KINDS[kind](facts, "en" if language == "en" else "zh", ack_url)
