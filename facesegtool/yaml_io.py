"""YAML read without aliases: a few hundred bytes of nested `*alias` references expand to gigabytes
(a "billion laughs"), and specs are copied into sidecars and reports. Our files never need them."""

from __future__ import annotations

import yaml

from .errors import FacesegError


class YamlAliasError(FacesegError, yaml.YAMLError):
    """The document uses an alias (*name) or a merge key (<<); the message says where."""


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise YamlAliasError(f"line {mark.line + 1}: YAML aliases (*name) are not accepted; write the values out")
        return super().compose_node(parent, index)


def safe_load_no_aliases(text: str) -> object:
    """yaml.safe_load, refusing aliases before anything is expanded."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
