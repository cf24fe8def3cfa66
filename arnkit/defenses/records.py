"""The typed defense record lives in the services layer (`arnkit.runs.defense_record`); this module keeps the
public import path."""

from arnkit.runs.defense_record import KINDS, DefenseRecord, Kind

__all__ = ["KINDS", "DefenseRecord", "Kind"]
