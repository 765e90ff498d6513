"""The planner: what fits, on how many GPUs, with what context and concurrency, how to launch it, and what
it costs. Every number is the vLLM engine's, re-run per option; the planner searches and ranks."""

from __future__ import annotations

from .commands import LaunchSpec, launch_commands
from .cost import gpu_time_cost
from .render import render_answer, render_context_table, render_plan
from .search import plan
from .tables import context_table
from .types import ContextRow, ContextTable, GpuTimeCost, Nearest, Option, PlanResult, Requested, Throughput

__all__ = ["plan", "context_table", "gpu_time_cost", "render_plan", "render_answer", "render_context_table", "launch_commands",
           "LaunchSpec", "PlanResult", "Option", "Requested", "Nearest", "Throughput", "ContextTable",
           "ContextRow", "GpuTimeCost"]
