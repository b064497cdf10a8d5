"""Reading the service's rule files: the escalation policy and the category catalogue (TOML).

The domain holds the rules and validates what the files say (:func:`policy_from_dict`,
:func:`catalogue_from_dict`); reading the files is I/O, so it happens here, at start-up
(:mod:`services.issues.bootstrap`) and in the ``gridwork issues-policy`` command.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from .domain.catalogue import Catalogue, catalogue_from_dict
from .domain.policy import Policy, policy_from_dict


def load_policy(path: Path) -> Policy:
    """Read the escalation policy file (raises ``PolicyError`` naming a bad entry)."""
    with path.open("rb") as fh:
        return policy_from_dict(tomllib.load(fh))


def load_catalogue(path: Path) -> Catalogue:
    """Read the category catalogue file (raises ``PolicyError`` naming a bad entry)."""
    with path.open("rb") as fh:
        return catalogue_from_dict(tomllib.load(fh))
