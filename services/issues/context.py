"""The issues service's own runtime pieces (settings, policy, catalogue), kept on the shared Runtime."""

from __future__ import annotations

from dataclasses import dataclass

from shared.service import Runtime

from .policy import Catalogue, Policy, load_catalogue, load_policy
from .settings import IssuesSettings, issues_settings


@dataclass(frozen=True)
class IssuesContext:
    """What every route, reaction and worker of the issues service needs besides the connections."""

    settings: IssuesSettings
    policy: Policy
    catalogue: Catalogue

    @classmethod
    def load(cls, settings: IssuesSettings) -> IssuesContext:
        """Read the policy and catalogue files named by the settings (fails fast on a bad file)."""
        return cls(
            settings, load_policy(settings.issues_escalation_file), load_catalogue(settings.issues_catalogue_file)
        )


def issues_context(runtime: Runtime) -> IssuesContext:
    """The context the start-up hook put on the runtime (built on first use otherwise)."""
    ctx = runtime.state.get("issues")
    if ctx is None:
        ctx = IssuesContext.load(issues_settings(runtime.settings))
        runtime.state["issues"] = ctx
    return ctx
