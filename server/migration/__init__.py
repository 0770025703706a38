"""Staged anchor migration (issue 16): serve each lock the chain of the anchor it holds while
the fleet moves from the active set's anchor to a new one. ``state`` (on disk), ``choice`` (the
chain per connection), ``progress`` (who moved), ``service`` (what the host holds)."""
