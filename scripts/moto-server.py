"""moto's server for the tests, one request at a time.

`moto_server` serves requests on threads, and moto's DynamoDB is not
thread-safe under concurrent transactions: a transaction deep-copies the
table for its rollback while another writes it ("dictionary changed size
during iteration", HTTP 500), and a rolled-back copy can undo a neighbour's
committed write. DynamoDB is linearizable per item; served one request at a
time, moto is too. Usage: python3 scripts/moto-server.py PORT
"""

import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

port = int(sys.argv[1])
os.environ.setdefault("MOTO_PORT", str(port))
run_simple(
    "127.0.0.1",
    port,
    DomainDispatcherApplication(create_backend_app),
    threaded=False,
    request_handler=MotoRequestHandler,
)
