"""The web page for the people on call: acknowledgement links in SMS, and a dashboard.

Off unless ``http`` is enabled and a ``web`` section (or ``http.public_url`` for the links) is
configured. :func:`create_web` builds the pieces from the configuration; the daemon mounts
:meth:`WebPages.routes` on its HTTP server and gives the engine the :class:`AckLinks`.
"""
