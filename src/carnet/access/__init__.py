"""The access core: the only path to records, documents, consents, representatives and traces.

Interfaces hold a :class:`~carnet.access.core.Core` and call a per-request
:class:`~carnet.access.scope.Scope` with domain types (carnet.domain); the policy
(:func:`carnet.access.policy.decide`) is the one place a rule is decided; the guard traces every
decision; the unit of work is the one way to the store. See docs/architecture.md.
"""
