"""Pass-through nodes: a feature node and an availability declaration do not change values."""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir

from compiler.ibis_backend._registry import Ctx, register


@register("feature")
def feature(ctx: Ctx, x: ir.Value) -> ir.Value:
    return x


@register("availability")
def availability(ctx: Ctx, x: ir.Value, **options: Any) -> ir.Value:
    """The lag/mode options are planner metadata (availability), not a value change."""
    return x
