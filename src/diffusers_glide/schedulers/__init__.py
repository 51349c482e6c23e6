"""GLIDE's scheduler (respaced ancestral / DDIM sampling with learned-range variance) and its respacing tables."""

from .scheduling_glide import GlideScheduler, GlideSchedulerOutput

__all__ = ["GlideScheduler", "GlideSchedulerOutput"]
