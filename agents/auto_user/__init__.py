"""The trained, stateless auto-user policy."""

from agents.auto_user.agent import AutoUserAgent, AutoUserConfig

__all__ = ["AutoUserAgent", "AutoUserConfig"]
