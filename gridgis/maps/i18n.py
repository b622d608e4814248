"""The pages' words, one place per language: Simplified Chinese by default, English too.

A page gets its language from ``?lang=`` (``zh`` or ``en``); its script reads the words as
``gridgis.t``. Add a language by adding a table with the same keys.
"""

LANGUAGES = ("zh", "en")
TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "lang": "zh-CN",
        "view": "着色", "view_community": "按社区", "view_tier": "预警等级",
        "view_ack": "确认状态", "view_progress": "清单进度", "view_risk": "截止风险",
        "view_vulnerable": "脆弱人群",
        "tier_hurricane": "12级以上", "tier_storm": "10级风圈", "tier_gale": "7级风圈",
        "tier_area": "预警区域", "no_alert": "无预警",
        "ack_yes": "已确认", "ack_no": "未确认", "ack_escalated": "已升级",
        "progress_done": "已完成", "progress_half": "过半", "progress_low": "不足一半",
        "risk_yes": "可能超时", "risk_no": "进度正常",
        "vulnerable_none": "无", "vulnerable_some": "1–5 人", "vulnerable_many": "6–20 人",
        "vulnerable_most": "20 人以上",
        "figures": "全域数字", "alerted": "预警网格", "acknowledged": "已确认",
        "worked_through": "清单完成", "at_risk": "可能超时", "checked_in": "已转移入住",
        "shelter_room": "避护场所空位", "dead_letters": "未送达消息", "people": "人",
        "grids_unit": "个",
        "households": "户", "open_grid": "打开网格页", "report": "复盘报告",
        "level": "级别", "items": "清单", "live": "实时", "offline": "连接中断，重连中",
        "legend": "图例", "grids": "网格", "communities": "社区边界", "streets": "街道边界",
        "stations": "党群服务阵地", "shelters": "避护场所", "hazard": "台风风圈与预警区",
        "buildings": "楼栋",
    },
    "en": {
        "lang": "en",
        "view": "Colour by", "view_community": "Community", "view_tier": "Warning tier",
        "view_ack": "Acknowledgement", "view_progress": "Checklist progress",
        "view_risk": "Deadline risk", "view_vulnerable": "Vulnerable residents",
        "tier_hurricane": "Hurricane force", "tier_storm": "Storm force",
        "tier_gale": "Gale force", "tier_area": "Warning area", "no_alert": "No alert",
        "ack_yes": "Acknowledged", "ack_no": "Not acknowledged", "ack_escalated": "Escalated",
        "progress_done": "Done", "progress_half": "Over half", "progress_low": "Under half",
        "risk_yes": "At risk", "risk_no": "On track",
        "vulnerable_none": "None", "vulnerable_some": "1–5", "vulnerable_many": "6–20",
        "vulnerable_most": "Over 20",
        "figures": "Territory", "alerted": "Grids alerted", "acknowledged": "Acknowledged",
        "worked_through": "Checklists done", "at_risk": "At risk",
        "checked_in": "People in shelters", "shelter_room": "Shelter room left",
        "dead_letters": "Undelivered messages", "people": "people", "grids_unit": "",
        "households": "households", "open_grid": "Open grid page", "report": "Report",
        "level": "Level", "items": "Checklist", "live": "Live",
        "offline": "Connection lost, reconnecting",
        "legend": "Legend", "grids": "Grids", "communities": "Communities",
        "streets": "Streets", "stations": "Service positions", "shelters": "Shelters",
        "hazard": "Wind circles and warning areas", "buildings": "Buildings",
    },
}


def words(lang: str | None) -> dict[str, str]:
    """The words of ``lang`` (Simplified Chinese for anything else)."""
    return TEXT.get(lang or "zh", TEXT["zh"])
