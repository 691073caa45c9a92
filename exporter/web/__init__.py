"""Everything HTTP on our side: server, routes, auth, status page, web config."""
