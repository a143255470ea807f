"""The gateway's routers, one per resource (included by `api.app.create_app`)."""
