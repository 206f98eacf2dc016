from setuptools import find_packages, setup

setup(
    name="tracker",
    version="0.1.0",
    description="Fleet GPS tracking and equipment monitoring server",
    python_requires=">=3.11",
    packages=find_packages(include=["protocols*", "geofence*", "tracker*", "web*"]),
    package_data={"tracker.storage": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"]},
    install_requires=[
        "twisted[tls]>=25.5",         # pyOpenSSL, service_identity: HTTPS and ssl: ports;
                                      # twisted.web.websocket (/api/socket, web/live.py)
        "wsproto>=1.2",               # the WebSocket framing under twisted.web.websocket
        "sqlalchemy>=2.0,<2.2",
        "geoalchemy2>=0.15",
        "alembic>=1.13",
        "psycopg2-binary>=2.9",
        "argon2-cffi>=23.1",
        "shapely>=2.0",
        "pyproj>=3.6",
        "firebase-admin>=6.5",        # FCM HTTP v1 (tracker/push/fcm.py)
        "httpx[http2]>=0.27",         # the other push gateways; HTTP/2 for APNs
        "pyjwt[crypto]>=2.8",         # APNs ES256 provider tokens
        "klein>=24.8",                # the HTTP API's routing layer on twisted.web (web/routes.py)
        "pydantic>=2",                # the API's input models and OpenAPI schemas
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "import-linter>=2.1",
                 # the lint env: ruff, mypy with its zope plugin and stubs
                 "ruff", "mypy>=1.10", "mypy-zope>=1.0", "types-requests",
                 "pytraccar==2.1.1"],   # Home Assistant's client (test_socket_end_to_end)
    },
    entry_points={"console_scripts": ["tracker = tracker.cli:main"]},
)
