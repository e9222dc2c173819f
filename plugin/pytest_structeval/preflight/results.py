"""What a check returns, shared by the checks and the model-file inspection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "fail", "skip"]

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class CheckResult:
    status: Status
    detail: str
    fix: str = ""

    @property
    def message(self) -> str:
        """What a failed test shows: the detail, then the fix on its own line."""
        return f"{self.detail}\nfix: {self.fix}" if self.fix else self.detail


def passed(detail: str) -> CheckResult:
    return CheckResult("pass", detail)


def failed(detail: str, fix: str) -> CheckResult:
    return CheckResult("fail", detail, fix)


def skipped(detail: str) -> CheckResult:
    return CheckResult("skip", detail)


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"
