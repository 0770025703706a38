"""A small HTTP/1.1 WSGI server of our own: ``loop`` (the event loops and the ``Server``),
``connection`` (one client's state and its request body), ``parse`` (parsing and framing as
pure functions) and ``wsgi`` (the environ and the response).

Why not cheroot, which served here before: its pure-Python buffered I/O and parsing cost more CPU
per request than the whole Flask request, and keeping stalled clients off its workers needed
subclasses of most of its classes.
"""
