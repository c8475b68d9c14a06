"""Access control: the policy (``decide``) and the access-scoped service, the only path to data."""
